//! Black-box tests: the real binaries, a fresh database each, HTTP on a free port.

mod foundation;
mod handover;
mod kapso;
mod sending;
mod webhook;
