//! Studies: many runs of `regstudy train` compared under one spec, stored, and reported.
//!
//! - [`spec`]: the TOML study spec and its expansion into trials;
//! - [`select`]: how a method's grid point is chosen, on validation only;
//! - [`prune`]: how search trials of clearly worse grid points are stopped early (ASHA);
//! - the runner claims trials from a [`crate::store::Store`] and trains them, keeping what
//!   it learns in the records of [`crate::trial`].

pub mod launch;
pub mod layout;
pub mod name;
pub mod owner;
pub mod presets;
pub mod prune;

pub mod retry;
pub mod runner;
pub mod select;
pub mod spec;
