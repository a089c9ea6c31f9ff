//! Reports of studies.
