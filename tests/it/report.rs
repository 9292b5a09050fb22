//! Report renderers: one shared in-code report fixture rendered in every format, each parsed back and
//! checked; plus the official SARIF validator, skipped with a printed reason when it is absent.

mod fixture;
mod formats;
mod sarif;
