//! The integration tests of the parsers and the generator, in one test binary.
//!
//! Each file beside this one is a module. One binary rather than one per
//! file: every test binary links DataFusion, and each took about 270 MB of
//! disk and a link of its own. nextest still runs every test in its own
//! process.

mod cloudtrail;
mod follow;
mod generate;
mod pieces;
mod session;
