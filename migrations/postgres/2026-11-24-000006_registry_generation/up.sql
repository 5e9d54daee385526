-- The registry (certificates, partners, finance users, signing keys, offer versions) changes
-- rarely and is read on every request. Gateways cache it and read only this one number per
-- request: every change to those tables, by any process, moves it on, and a gateway that
-- sees it move drops its cache.
CREATE TABLE registry_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO registry_generation (id, generation) VALUES (1, 1);

CREATE FUNCTION alliance_registry_changed() RETURNS trigger AS $$
BEGIN
    UPDATE registry_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Per statement, so that a bulk change moves it once; TRUNCATE too.
CREATE TRIGGER certificates_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON certificates
FOR EACH STATEMENT EXECUTE FUNCTION alliance_registry_changed();
CREATE TRIGGER partners_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON partners
FOR EACH STATEMENT EXECUTE FUNCTION alliance_registry_changed();
CREATE TRIGGER finance_users_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON finance_users
FOR EACH STATEMENT EXECUTE FUNCTION alliance_registry_changed();
CREATE TRIGGER signing_keys_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON signing_keys
FOR EACH STATEMENT EXECUTE FUNCTION alliance_registry_changed();
CREATE TRIGGER offer_versions_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON offer_versions
FOR EACH STATEMENT EXECUTE FUNCTION alliance_registry_changed();
