-- The registry (certificates, partners, finance users, signing keys, offer versions) changes
-- rarely and is read on every request. Gateways cache it and read only this one number per
-- request: every change to those tables, by any process, moves it on, and a gateway that
-- sees it move drops its cache.
CREATE TABLE registry_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO registry_generation (id, generation) VALUES (1, 1);
CREATE TRIGGER certificates_generation_insert AFTER INSERT ON certificates
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER certificates_generation_update AFTER UPDATE ON certificates
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER certificates_generation_delete AFTER DELETE ON certificates
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER partners_generation_insert AFTER INSERT ON partners
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER partners_generation_update AFTER UPDATE ON partners
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER partners_generation_delete AFTER DELETE ON partners
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER finance_users_generation_insert AFTER INSERT ON finance_users
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER finance_users_generation_update AFTER UPDATE ON finance_users
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER finance_users_generation_delete AFTER DELETE ON finance_users
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_generation_insert AFTER INSERT ON signing_keys
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_generation_update AFTER UPDATE ON signing_keys
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER signing_keys_generation_delete AFTER DELETE ON signing_keys
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER offer_versions_generation_insert AFTER INSERT ON offer_versions
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER offer_versions_generation_update AFTER UPDATE ON offer_versions
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER offer_versions_generation_delete AFTER DELETE ON offer_versions
BEGIN UPDATE registry_generation SET generation = generation + 1 WHERE id = 1; END;
