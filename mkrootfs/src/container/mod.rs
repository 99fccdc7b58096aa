//! Containers, the builder's half: a service's `container` table is checked
//! against the image and resolved into the plan the init executes, and its
//! seccomp policy is compiled to BPF here, so the init only makes syscalls.

pub mod caps;
pub mod seccomp;
pub mod syscalls;
