//! The QEMU boots of the guests `mkrootfs vm-config` describes: a
//! [`Guest`] on any [`Machine`] (what `mkrootfs run` and `vm-config --target
//! qemu-microvm` use), and a [`FirecrackerConfig`] on QEMU `microvm` shaped
//! like Firecracker. They live here, beside the harness, so that the builder
//! library does not depend on it (`cargo tree -p mkrootfs -e normal`).

use mkrootfs::vmconfig::{
    join_args, FirecrackerConfig, FirecrackerDrive, Guest, GuestDisk, GuestNet, NetBackend,
    CLOUD_HYPERVISOR_CMDLINE,
};
use mkrootfs_qemu::{Disk, HostFwd, Machine, Net, Nic, VmConfig};

/// A [`Guest`] booted by QEMU.
pub trait GuestOnQemu {
    /// The QEMU boot of this guest on `machine`. For
    /// [`Machine::FirecrackerLike`] go through [`Guest::firecracker`] and
    /// [`FirecrackerOnQemu::to_qemu`] instead, so that the boot arguments
    /// and devices are those of the emitted configuration.
    fn qemu(&self, machine: Machine) -> VmConfig;

    /// This guest on QEMU `microvm` shaped like Cloud Hypervisor.
    fn cloud_hypervisor_qemu(&self) -> VmConfig {
        self.qemu(Machine::CloudHypervisorLike)
    }
}

impl GuestOnQemu for Guest {
    fn qemu(&self, machine: Machine) -> VmConfig {
        let mut cfg = VmConfig::new(self.kernel.clone(), self.initrd.clone());
        cfg.machine = machine;
        cfg.append = match machine {
            Machine::CloudHypervisorLike => self.cmdline(CLOUD_HYPERVISOR_CMDLINE),
            _ => self.cmdline(""),
        };
        cfg.memory_mb = self.memory_mib;
        cfg.cpus = self.cpus.max(1);
        cfg.disks = self
            .block_devices()
            .iter()
            .map(|(_, d)| qemu_disk(d))
            .collect();
        if let Some(v) = &self.vsock {
            // QEMU's vsock is vhost-vsock: the host kernel's AF_VSOCK at
            // the guest's CID, no Unix socket (the Firecracker and Cloud
            // Hypervisor proxies have one).
            let device = match machine {
                Machine::Pc | Machine::CloudHypervisorLike => "vhost-vsock-pci",
                _ => "vhost-vsock-device",
            };
            cfg.extra_args.extend([
                "-device".to_string(),
                format!("{device},guest-cid={}", v.cid),
            ]);
        }
        cfg.net = self.net.as_ref().map(qemu_nic);
        cfg.rng = self.rng;
        cfg
    }
}

/// The virtio-net device of a guest's interface: the device model the
/// machine has (virtio-net-pci on `pc` and Cloud Hypervisor's shape,
/// virtio-net-device on the microvm shapes) is the harness's choice.
pub fn qemu_nic(n: &GuestNet) -> Nic {
    let backend = match &n.backend {
        NetBackend::Tap(t) => Net::Tap(t.clone()),
        NetBackend::User { hostfwd } => Net::User {
            hostfwd: hostfwd
                .iter()
                .map(|&(host_port, guest_port)| HostFwd {
                    host_port,
                    guest_port,
                })
                .collect(),
            guestfwd: Vec::new(),
        },
    };
    Nic {
        backend,
        mac: Some(n.mac.to_string()),
    }
}

fn qemu_disk(d: &GuestDisk) -> Disk {
    let mut disk = Disk::raw(&d.path);
    disk.readonly = d.read_only;
    disk
}

/// A Firecracker configuration booted by QEMU.
pub trait FirecrackerOnQemu {
    /// The boot this configuration describes, on QEMU `microvm` shaped like
    /// Firecracker ([`Machine::FirecrackerLike`]): its kernel, initrd,
    /// memory and vCPUs, its drives in order, and its boot arguments plus
    /// what Firecracker itself adds (`root=/dev/vda rw|ro` for a root
    /// drive). Set `machine` to [`Machine::FirecrackerLegacyLike`] on the
    /// result for Firecracker's older, command-line-only device announcement.
    fn to_qemu(&self) -> VmConfig;
}

impl FirecrackerOnQemu for FirecrackerConfig {
    fn to_qemu(&self) -> VmConfig {
        let b = &self.boot_source;
        let initrd = b.initrd_path.clone().unwrap_or_default();
        let mut cfg = VmConfig::new(&b.kernel_image_path, initrd);
        cfg.machine = Machine::FirecrackerLike;
        let mut append = b.boot_args.clone().unwrap_or_default();
        if let Some(root) = self.drives.iter().find(|d| d.is_root_device) {
            let mode = if root.is_read_only { "ro" } else { "rw" };
            append = join_args(&format!("root=/dev/vda {mode}"), &append);
        }
        cfg.append = append;
        cfg.memory_mb = self.machine_config.mem_size_mib;
        cfg.cpus = self.machine_config.vcpu_count;
        // Firecracker attaches the root device first, then the others in order.
        let mut drives: Vec<&FirecrackerDrive> = self.drives.iter().collect();
        drives.sort_by_key(|d| !d.is_root_device);
        cfg.disks = drives
            .into_iter()
            .map(|d| {
                let mut disk = Disk::raw(&d.path_on_host);
                disk.readonly = d.is_read_only;
                disk
            })
            .collect();
        cfg.debug_exit = false;
        cfg.net = self.network_interfaces.first().map(|n| Nic {
            backend: Net::Tap(n.host_dev_name.clone()),
            mac: n.guest_mac.clone(),
        });
        // Firecracker attaches its entropy device after the network's, as
        // the harness does.
        cfg.rng = self.entropy.is_some();
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrootfs::vmconfig::GuestVsock;
    use std::path::Path;

    /// The guest of mkrootfs/src/vmconfig/tests.rs.
    fn full_guest() -> Guest {
        let mut g = Guest::new("/k/vmlinux", "/img/app.cpio.zst");
        g.disks = vec![
            GuestDisk {
                path: "/img/root.ext4".into(),
                read_only: false,
            },
            GuestDisk {
                path: "/img/data.erofs".into(),
                read_only: true,
            },
        ];
        g.root_disk = true;
        g.memory_mib = 256;
        g.cpus = 2;
        g.append = "quiet mkrootfs.debug".into();
        g.vsock = Some(GuestVsock {
            cid: 3,
            socket: "/run/app/vsock.sock".into(),
        });
        g
    }

    #[test]
    fn firecracker_config_on_qemu_puts_the_root_drive_first_and_adds_what_firecracker_adds() {
        let mut cfg = full_guest().firecracker();
        cfg.drives.reverse();
        let vm = cfg.to_qemu();
        assert_eq!(vm.machine, Machine::FirecrackerLike);
        assert_eq!(vm.kernel, Path::new("/k/vmlinux"));
        assert_eq!(vm.initrd, Path::new("/img/app.cpio.zst"));
        assert_eq!(
            vm.append,
            "root=/dev/vda rw console=ttyS0 reboot=k panic=1 pci=off mkrootfs.shutdown=reboot quiet mkrootfs.debug"
        );
        assert_eq!((vm.memory_mb, vm.cpus), (256, 2));
        assert_eq!(
            disks(&vm),
            [("/img/root.ext4", false), ("/img/data.erofs", true)]
        );
        assert!(!vm.debug_exit);
        assert!(vm.rng);
        cfg.entropy = None;
        assert!(!cfg.to_qemu().rng);
    }

    /// Each disk's path and whether it is read-only, in order.
    fn disks(vm: &VmConfig) -> Vec<(&str, bool)> {
        vm.disks
            .iter()
            .map(|d| (d.path.to_str().unwrap(), d.readonly))
            .collect()
    }

    /// The QEMU arguments of `cfg` as one line (for a KVM host: no probe).
    fn line(mut cfg: VmConfig) -> String {
        cfg.accel = mkrootfs_qemu::Accel::Kvm;
        let cmd = cfg.command();
        let words: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        words.join(" ")
    }

    #[test]
    fn config_drive_on_qemu_is_a_read_only_virtio_blk_after_the_disks() {
        let mut g = full_guest();
        g.config_drive = Some("/img/vm-1.cfg".into());
        for (machine, device) in [
            (Machine::Pc, "virtio-blk-pci"),
            (Machine::CloudHypervisorLike, "virtio-blk-pci"),
            (Machine::Microvm, "virtio-blk-device"),
        ] {
            let vm = g.qemu(machine);
            assert_eq!(
                disks(&vm),
                [
                    ("/img/root.ext4", false),
                    ("/img/data.erofs", true),
                    ("/img/vm-1.cfg", true)
                ],
                "{machine:?}"
            );
            let l = line(vm);
            assert!(
                l.contains(&format!(
                    " -drive file=/img/vm-1.cfg,format=raw,if=none,id=disk2,readonly=on -device {device},drive=disk2 "
                )),
                "{machine:?}: {l}"
            );
            assert!(l.contains("root=/dev/vda rw"), "{l}");
        }
        // Firecracker's shape: the drive from its configuration, after the root.
        let vm = g.firecracker().to_qemu();
        let last = vm.disks.last().unwrap();
        assert_eq!(
            (last.path.to_str().unwrap(), last.readonly),
            ("/img/vm-1.cfg", true)
        );
        assert_eq!(vm.disks[0].path, Path::new("/img/root.ext4"));
        assert!(line(vm).contains(" -device virtio-blk-device,drive=disk2 "));
    }

    #[test]
    fn qemu_microvm_boot_is_the_run_command_s() {
        let g = full_guest();
        let vm = g.qemu(Machine::Microvm);
        assert_eq!(vm.machine, Machine::Microvm);
        assert_eq!(vm.append, "root=/dev/vda rw quiet mkrootfs.debug");
        assert_eq!((vm.memory_mb, vm.cpus), (256, 2));
        assert!(vm.debug_exit);
        assert!(vm.rng);
        let ch = g.cloud_hypervisor_qemu();
        assert_eq!(ch.machine, Machine::CloudHypervisorLike);
        assert_eq!(
            ch.append,
            "console=ttyS0 root=/dev/vda rw quiet mkrootfs.debug"
        );
    }
}
