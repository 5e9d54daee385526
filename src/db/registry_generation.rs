use super::schema::registry_generation;
use super::DbConn;
use diesel::prelude::*;

/// A number that every change to the registry tables (certificates, partners, finance users,
/// signing keys, offer versions) moves on, by trigger, whichever process makes it. A cache of
/// those tables that was filled at generation N is good while the generation is still N.
pub struct RegistryGeneration;

impl RegistryGeneration {
    pub fn current(conn: &mut DbConn) -> QueryResult<i64> {
        concrete!(conn, |c| registry_generation::table
            .find(1)
            .select(registry_generation::generation)
            .first(c))
    }
}
