//! An in-process cache of the registry: certificates, partners, finance users, signing keys
//! and offer versions. Every request used to read three or four of those rows; they change a
//! few times a day, by an admin, often from another process. Now a request reads one number,
//! the registry generation (`db::registry_generation`), which triggers move on at every change
//! of those tables. The cache holds what it read at one generation and is dropped when a
//! request sees a newer one, so a suspension, a revocation or a key rotation made by the CLI
//! counts from the next request, exactly as when every request read the rows.
//!
//! Framework-free; the HTTP edge keeps one [`Registry`] for the process.
use crate::db::certificates::Certificate;
use crate::db::finance_users::FinanceUser;
use crate::db::offer_versions::OfferVersion;
use crate::db::partners::Partner;
use crate::db::registry_generation::RegistryGeneration;
use crate::db::signing_keys::SigningKey;
use crate::db::{DbConn, DbError};
use crate::domain::terms::Terms;
use chrono::NaiveDate;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

/// Entries per kind. Keys come from callers (a key id, a fingerprint), so a caller that sends
/// a new one each time must not grow the cache: a full map is emptied and starts again.
pub const MAX_ENTRIES_PER_KIND: usize = 4_096;

/// An offer version with its terms parsed once.
#[derive(Debug)]
pub struct Offer {
    pub version: OfferVersion,
    pub terms: Terms,
}

type Entries<K, V> = HashMap<K, Option<Arc<V>>>;

/// What was read at one generation. Absent rows are cached too (`None`): at one generation
/// they stay absent.
#[derive(Default)]
struct Cached {
    generation: i64,
    certificates: Entries<String, Certificate>,
    partners: Entries<String, Partner>,
    finance_users: Entries<String, FinanceUser>,
    signing_keys: Entries<String, SigningKey>,
    offers_in_force: Entries<(String, NaiveDate), Offer>,
}

/// The process's cache. Cheap to clone (one `Arc`).
#[derive(Clone, Default)]
pub struct Registry {
    cached: Arc<Mutex<Cached>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the current generation (one statement) and returns the registry as of it. A
    /// newer generation than the cache's drops the cache.
    pub fn current(&self, conn: &mut DbConn) -> Result<RegistryView, DbError> {
        let generation = RegistryGeneration::current(conn)?;
        let mut cached = self.lock();
        if generation > cached.generation {
            *cached = Cached {
                generation,
                ..Cached::default()
            };
        }
        Ok(RegistryView {
            registry: self.clone(),
            generation,
        })
    }

    /// The registry as of the generation the cache holds, read without asking the database:
    /// for checks that confirm the generation afterwards, in the statement that claims the
    /// request's nonce (see `auth`, "checked, then confirmed"). `None` before the first read.
    pub fn cached_view(&self) -> Option<RegistryView> {
        let generation = self.lock().generation;
        // Generations start at 1 (the migration's row); 0 is the empty cache's.
        (generation > 0).then(|| RegistryView {
            registry: self.clone(),
            generation,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Cached> {
        // A panic while holding the lock cannot leave a half-written map that matters: the
        // worst is a missing entry, read again from the database.
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where a lookup that misses the cache reads its row: a database connection, or nowhere
/// ([`CacheOnly`]) for checks made off the database threads.
pub trait Source {
    fn conn(&mut self) -> Result<&mut DbConn, DbError>;
}

impl Source for DbConn {
    fn conn(&mut self) -> Result<&mut DbConn, DbError> {
        Ok(self)
    }
}

impl Source for crate::db::PooledConn {
    fn conn(&mut self) -> Result<&mut DbConn, DbError> {
        Ok(self)
    }
}

/// No database: a lookup the cache cannot answer fails with [`DbError::NotCached`], and the
/// caller makes its checks again on a database thread.
pub struct CacheOnly;

impl Source for CacheOnly {
    fn conn(&mut self) -> Result<&mut DbConn, DbError> {
        Err(DbError::NotCached)
    }
}

/// The registry as of the generation one request read. Lookups answer from the cache when it
/// is still at that generation, and from the database otherwise.
#[derive(Clone)]
pub struct RegistryView {
    registry: Registry,
    generation: i64,
}

impl std::fmt::Debug for RegistryView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryView")
            .field("generation", &self.generation)
            .finish()
    }
}

impl RegistryView {
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The cached entry for `key`, or what `load` reads (then cached, if the cache is still at
    /// this view's generation). The lock is never held across a database read.
    fn lookup<K, V, E>(
        &self,
        entries: fn(&mut Cached) -> &mut Entries<K, V>,
        key: K,
        load: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Result<Option<Arc<V>>, E>
    where
        K: Eq + Hash,
    {
        {
            let mut cached = self.registry.lock();
            if cached.generation == self.generation {
                if let Some(hit) = entries(&mut cached).get(&key) {
                    return Ok(hit.clone());
                }
            }
        }
        let value = load()?.map(Arc::new);
        let mut cached = self.registry.lock();
        if cached.generation == self.generation {
            let map = entries(&mut cached);
            if map.len() >= MAX_ENTRIES_PER_KIND {
                map.clear();
            }
            map.insert(key, value.clone());
        }
        Ok(value)
    }

    pub fn certificate<S: Source + ?Sized>(
        &self,
        src: &mut S,
        fingerprint_sha256: &str,
    ) -> Result<Option<Arc<Certificate>>, DbError> {
        self.lookup(
            |c| &mut c.certificates,
            fingerprint_sha256.to_owned(),
            || {
                Ok(Certificate::find_by_fingerprint(
                    src.conn()?,
                    fingerprint_sha256,
                )?)
            },
        )
    }

    pub fn partner<S: Source + ?Sized>(
        &self,
        src: &mut S,
        code: &str,
    ) -> Result<Option<Arc<Partner>>, DbError> {
        self.lookup(
            |c| &mut c.partners,
            code.to_owned(),
            || Ok(Partner::find(src.conn()?, code)?),
        )
    }

    pub fn finance_user<S: Source + ?Sized>(
        &self,
        src: &mut S,
        name: &str,
    ) -> Result<Option<Arc<FinanceUser>>, DbError> {
        self.lookup(
            |c| &mut c.finance_users,
            name.to_owned(),
            || Ok(FinanceUser::find(src.conn()?, name)?),
        )
    }

    pub fn signing_key<S: Source + ?Sized>(
        &self,
        src: &mut S,
        key_id: &str,
    ) -> Result<Option<Arc<SigningKey>>, DbError> {
        self.lookup(
            |c| &mut c.signing_keys,
            key_id.to_owned(),
            || Ok(SigningKey::find(src.conn()?, key_id)?),
        )
    }

    /// The partner's offer version in force on `day`, with its terms.
    pub fn offer_in_force(
        &self,
        conn: &mut DbConn,
        partner: &str,
        day: NaiveDate,
    ) -> Result<Option<Arc<Offer>>, DbError> {
        self.lookup(
            |c| &mut c.offers_in_force,
            (partner.to_owned(), day),
            || -> Result<Option<Offer>, DbError> {
                match OfferVersion::in_force(conn, partner, day)? {
                    Some(version) => {
                        let terms = terms_of(&version)?;
                        Ok(Some(Offer { version, terms }))
                    }
                    None => Ok(None),
                }
            },
        )
    }
}

/// The terms an offer version was registered with.
pub fn terms_of(version: &OfferVersion) -> Result<Terms, DbError> {
    serde_json::from_str(&version.terms_json).map_err(|e| {
        DbError::Invariant(format!(
            "offer {} v{}: {e}",
            version.partner_code, version.version
        ))
    })
}
