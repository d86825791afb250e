#![no_std]
//! Filled in by the kernel-tap work (issue 2).
