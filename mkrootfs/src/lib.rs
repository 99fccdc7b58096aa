//! mkrootfs library.
