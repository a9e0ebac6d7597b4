//! The database data plane: introspect a Moodle database into a neutral schema, export it
//! as staged chunks in a blob store, import them into another engine (resumably), and
//! verify both sides row by row — PostgreSQL, MySQL/MariaDB and SQLite, in every pair.
//!
//! Every SQL identifier is quoted; every value travels as a bound parameter (or in PG's
//! `COPY` stream). The one exception is MySQL's `AUTO_INCREMENT = n`, which DDL cannot bind:
//! `n` is an `i64` we computed, never text from outside.

#![warn(missing_docs)]

pub mod engine;
pub mod fixture;
pub mod mover;
pub mod mytsv;
pub mod pgcopy;
pub mod plan;
pub mod schema;
pub mod server;
pub mod site;
pub mod stage;
pub mod target;
pub mod verify;

pub use engine::{BUNDLE, Db, Engine, LEDGER_TABLE, Load, RawChunk, set_ca_bundle};
pub use mover::{
    Budget, CopyLimits, ExportReport, ImportFrom, ImportOptions, ImportReport, ImportStart,
    NoProgress, Progress, begin_export, begin_import, begin_import_following, check_import, copy,
    export, export_budgeted, export_part, finish_import, import, import_part, import_part_from,
    seal_export,
};
pub use schema::{ColType, Column, Index, Row, Table, Value};
pub use verify::{Depth, TableCheck, VerifyReport, verify, verify_tables, verify_with};

use a2a_core::PortError;

/// The default Moodle table prefix.
pub const DEFAULT_PREFIX: &str = "mdl_";

/// What can go wrong moving a database. The variants are what the CLI maps to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A URL, a prefix or a stage that makes no sense (exit 2, nothing changed).
    #[error("{0}")]
    Input(String),
    /// A column whose type has no neutral equivalent; raised before anything is written.
    #[error(
        "{table}.{column}: type {ty} cannot be mapped to a neutral type (int, number, float, char, text, binary, bool, date, timestamp); nothing was written"
    )]
    Unmappable {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The engine's type.
        ty: String,
    },
    /// The target already holds tables of the prefix, and replacing was not asked for.
    #[error("{0}")]
    NotEmpty(String),
    /// The database could not be reached; the message names it, password hidden (exit 3).
    #[error("{0}")]
    Unreachable(String),
    /// A query failed.
    #[error("{0}")]
    Backend(String),
    /// Staged data is damaged or inconsistent.
    #[error("{0}")]
    Corrupt(String),
    /// The blob store failed.
    #[error("stage: {0}")]
    Stage(#[from] PortError),
}
