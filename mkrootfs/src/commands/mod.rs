//! One file per subcommand; each parses its arguments and calls the library.

pub mod build;
pub mod deps;
pub mod extract;
pub mod kernel;
pub mod ls;
pub mod run;
pub mod vm_config;
