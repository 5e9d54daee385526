DROP TRIGGER certificates_generation ON certificates;
DROP TRIGGER partners_generation ON partners;
DROP TRIGGER finance_users_generation ON finance_users;
DROP TRIGGER signing_keys_generation ON signing_keys;
DROP TRIGGER offer_versions_generation ON offer_versions;
DROP FUNCTION alliance_registry_changed();
DROP TABLE registry_generation;
