//! A runtime bundle: `config.json` (runtime-spec) and its root.
