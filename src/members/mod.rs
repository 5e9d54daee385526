//! Members: import from the mall's CRM export, and verification by partners.
pub mod import;
pub mod limits;
pub mod verify;
