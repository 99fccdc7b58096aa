//! The protobuf messages of the agent, written by hand with prost's derive
//! (no protoc, no build script). Names and field numbers are Kata's
//! (`src/libs/protocols/protos/{agent,health,oci}.proto`, package `grpc`)
//! and containerd's `ttrpc.proto`; fields we do not use are left out, and
//! protobuf skips unknown fields, so a Kata client's full messages decode.
//! `mkrootfs.Files` is ours: Kata has no call that reads a file out.

use prost::Message;

/// Kata's agent service and its methods that we serve.
pub const AGENT_SERVICE: &str = "grpc.AgentService";
pub const HEALTH_SERVICE: &str = "grpc.Health";
/// Our file-read service (not Kata's).
pub const FILES_SERVICE: &str = "mkrootfs.Files";

/// containerd ttrpc.proto `Request`.
#[derive(Clone, PartialEq, Message)]
pub struct Request {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub method: String,
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    #[prost(int64, tag = "4")]
    pub timeout_nano: i64,
    #[prost(message, repeated, tag = "5")]
    pub metadata: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// containerd ttrpc.proto `Response`.
#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
}

/// google.rpc.Status (details left out).
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// google.protobuf.Empty.
#[derive(Clone, PartialEq, Message)]
pub struct Empty {}

/// oci.proto `Process` (capabilities, rlimits, apparmor and selinux are
/// the container's own: see docs/agent.md).
#[derive(Clone, PartialEq, Message)]
pub struct Process {
    #[prost(bool, tag = "1")]
    pub terminal: bool,
    #[prost(message, optional, tag = "2")]
    pub console_size: Option<Box>,
    #[prost(message, optional, tag = "3")]
    pub user: Option<User>,
    #[prost(string, repeated, tag = "4")]
    pub args: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    pub env: Vec<String>,
    #[prost(string, tag = "6")]
    pub cwd: String,
    #[prost(bool, tag = "9")]
    pub no_new_privileges: bool,
}

/// oci.proto `Box`.
#[derive(Clone, PartialEq, Message)]
pub struct Box {
    #[prost(uint32, tag = "1")]
    pub height: u32,
    #[prost(uint32, tag = "2")]
    pub width: u32,
}

/// oci.proto `User`.
#[derive(Clone, PartialEq, Message)]
pub struct User {
    #[prost(uint32, tag = "1")]
    pub uid: u32,
    #[prost(uint32, tag = "2")]
    pub gid: u32,
    #[prost(uint32, repeated, tag = "3")]
    pub additional_gids: Vec<u32>,
    #[prost(string, tag = "4")]
    pub username: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ExecProcessRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(message, optional, tag = "4")]
    pub process: Option<Process>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SignalProcessRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(uint32, tag = "3")]
    pub signal: u32,
}

/// Also Kata's `CloseStdinRequest` (same fields and numbers).
#[derive(Clone, PartialEq, Message)]
pub struct WaitProcessRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

pub type CloseStdinRequest = WaitProcessRequest;

#[derive(Clone, PartialEq, Message)]
pub struct WaitProcessResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct WriteStreamRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct WriteStreamResponse {
    #[prost(uint32, tag = "1")]
    pub len: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ReadStreamRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(uint32, tag = "3")]
    pub len: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ReadStreamResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TtyWinResizeRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(uint32, tag = "3")]
    pub row: u32,
    #[prost(uint32, tag = "4")]
    pub column: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct CopyFileRequest {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(int64, tag = "2")]
    pub file_size: i64,
    #[prost(uint32, tag = "3")]
    pub file_mode: u32,
    #[prost(uint32, tag = "4")]
    pub dir_mode: u32,
    #[prost(int32, tag = "5")]
    pub uid: i32,
    #[prost(int32, tag = "6")]
    pub gid: i32,
    #[prost(int64, tag = "7")]
    pub offset: i64,
    #[prost(bytes = "vec", tag = "8")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GuestDetailsRequest {
    #[prost(bool, tag = "1")]
    pub mem_block_size: bool,
    #[prost(bool, tag = "2")]
    pub mem_hotplug_probe: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct AgentDetails {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(bool, tag = "2")]
    pub init_daemon: bool,
    #[prost(string, repeated, tag = "3")]
    pub device_handlers: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub storage_handlers: Vec<String>,
    #[prost(bool, tag = "5")]
    pub supports_seccomp: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct GuestDetailsResponse {
    #[prost(uint64, tag = "1")]
    pub mem_block_size_bytes: u64,
    #[prost(message, optional, tag = "2")]
    pub agent_details: Option<AgentDetails>,
    #[prost(bool, tag = "3")]
    pub support_mem_hotplug_probe: bool,
}

/// `ReseedRandomDevRequest`: bytes for the guest's CRNG. Kata numbers
/// its one field 2 (`bytes data = 2`; there is no field 1).
#[derive(Clone, PartialEq, Message)]
pub struct ReseedRandomDevRequest {
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// `SetGuestDateTimeRequest`: the wall-clock time, seconds and
/// microseconds since the Epoch (Kata's field names are `Sec`, `Usec`).
#[derive(Clone, PartialEq, Message)]
pub struct SetGuestDateTimeRequest {
    #[prost(int64, tag = "1")]
    pub sec: i64,
    #[prost(int64, tag = "2")]
    pub usec: i64,
}

/// health.proto `CheckRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct CheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// health.proto `HealthCheckResponse`; status 1 is SERVING.
#[derive(Clone, PartialEq, Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// health.proto `VersionCheckResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct VersionCheckResponse {
    #[prost(string, tag = "1")]
    pub grpc_version: String,
    #[prost(string, tag = "2")]
    pub agent_version: String,
}

/// `mkrootfs.Files/ReadFile`: up to `len` bytes of the VM file `path` from
/// `offset` (same directory allowlist as CopyFile).
#[derive(Clone, PartialEq, Message)]
pub struct ReadFileRequest {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(uint64, tag = "2")]
    pub offset: u64,
    #[prost(uint32, tag = "3")]
    pub len: u32,
}

/// The chunk read, the file's size, and whether the chunk ends the file.
#[derive(Clone, PartialEq, Message)]
pub struct ReadFileResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub size: u64,
    #[prost(bool, tag = "3")]
    pub eof: bool,
}

/// Encodes a message into a fresh buffer.
pub fn to_bytes(m: &impl Message) -> Vec<u8> {
    m.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_numbers_are_katas() {
        // ExecProcessRequest{container_id: "c", exec_id: "e", process: {args: ["sh"]}}
        let m = ExecProcessRequest {
            container_id: "c".into(),
            exec_id: "e".into(),
            process: Some(Process {
                args: vec!["sh".into()],
                ..Default::default()
            }),
        };
        assert_eq!(
            m.encode_to_vec(),
            [0x0a, 1, b'c', 0x12, 1, b'e', 0x22, 4, 0x22, 2, b's', b'h']
        );
        let w = WaitProcessResponse { status: 7 };
        assert_eq!(w.encode_to_vec(), [0x08, 7]);
        // Unknown fields (Kata's string_user = 3) are skipped.
        let mut with_user = vec![0x1a, 2, 0x0a, 0];
        with_user.extend(m.encode_to_vec());
        assert_eq!(ExecProcessRequest::decode(&with_user[..]).unwrap(), m);
        assert!(ExecProcessRequest::decode(&[0x0a, 9][..]).is_err());
    }

    #[test]
    fn resync_messages_are_katas() {
        // ReseedRandomDevRequest{data: [1, 2, 3]}: field 2, length-delimited.
        let r = ReseedRandomDevRequest {
            data: vec![1, 2, 3],
        };
        assert_eq!(r.encode_to_vec(), [0x12, 3, 1, 2, 3]);
        // SetGuestDateTimeRequest{Sec: 1_700_000_000, Usec: 5}: varints 1 and 2.
        let t = SetGuestDateTimeRequest {
            sec: 1_700_000_000,
            usec: 5,
        };
        assert_eq!(
            t.encode_to_vec(),
            [0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06, 0x10, 5]
        );
        // A negative int64 is ten bytes (two's complement varint).
        let neg = SetGuestDateTimeRequest { sec: 0, usec: -1 };
        assert_eq!(
            neg.encode_to_vec(),
            [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }
}
