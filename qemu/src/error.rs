//! Errors of the QEMU harness: one variant per failing step, naming the path or program.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("cannot read kernel {0}")]
    ReadKernel(PathBuf, #[source] io::Error),
    #[error(
        "{0} is neither an x86 bzImage (no \"HdrS\" setup header at 0x202) nor an ELF vmlinux"
    )]
    NotBzImage(PathBuf),
    #[error("kernel {0} carries no version string (setup header, or Linux banner of an ELF)")]
    NoKernelVersion(PathBuf),
    #[error("cannot create directory {0}")]
    CreateDir(PathBuf, #[source] io::Error),
    #[error("cannot read directory {0}")]
    ReadDir(PathBuf, #[source] io::Error),
    #[error("cannot remove {0}")]
    Remove(PathBuf, #[source] io::Error),
    #[error("cannot rename {0} to {1}")]
    Rename(PathBuf, PathBuf, #[source] io::Error),
    #[error("cannot open lock file {0}")]
    OpenLock(PathBuf, #[source] io::Error),
    #[error("cannot lock {0}")]
    Lock(PathBuf, #[source] io::Error),
    #[error("cannot run `{0}`")]
    Exec(String, #[source] io::Error),
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error(
        "`apt-cache depends linux-image-cloud-amd64` names no linux-image-*-cloud-amd64 package"
    )]
    NoCloudKernelPackage,
    #[error("`apt-get download {0}` left no {0}_*.deb in {1}")]
    DownloadedDebMissing(String, PathBuf),
    #[error("package {0} has no boot/vmlinuz-{1}")]
    PackageWithoutKernel(PathBuf, String),
    #[error("cannot start {0}")]
    Spawn(PathBuf, #[source] io::Error),
    #[error("cannot wait for QEMU")]
    Wait(#[source] io::Error),
    #[error("cannot kill QEMU")]
    Kill(#[source] io::Error),
    #[error("QMP {0}: {1}")]
    Qmp(PathBuf, String, #[source] io::Error),
    #[error("QMP {0}: {1}")]
    QmpProtocol(PathBuf, String),
    #[error("QMP command {command}: {class}: {desc}")]
    QmpCommand {
        command: String,
        class: String,
        desc: String,
    },
    #[error("console reader thread of QEMU panicked")]
    ReaderPanicked,
    #[error("QEMU failed before the guest printed anything ({status}): {stderr}")]
    QemuFailed {
        status: std::process::ExitStatus,
        stderr: String,
    },
}
