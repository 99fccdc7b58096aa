//! The agent's wire decoder on untrusted bytes: ttRPC frames (fed in
//! pieces whose sizes come from the input), then every payload decoded as
//! a Request and its payload as each message the agent accepts. Nothing may
//! panic, and the decoder never holds more than one frame's worth.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mkrootfs::agent::proto::*;
use mkrootfs::agent::ttrpc::{Decoder, Frame};
use prost::Message;

fn all_messages(p: &[u8]) {
    let _ = ExecProcessRequest::decode(p);
    let _ = SignalProcessRequest::decode(p);
    let _ = WaitProcessRequest::decode(p);
    let _ = WriteStreamRequest::decode(p);
    let _ = ReadStreamRequest::decode(p);
    let _ = TtyWinResizeRequest::decode(p);
    let _ = CopyFileRequest::decode(p);
    let _ = GuestDetailsRequest::decode(p);
    let _ = CheckRequest::decode(p);
    let _ = ReadFileRequest::decode(p);
    let _ = Response::decode(p);
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut d = Decoder::new(64 << 10);
    for piece in rest.chunks(step) {
        d.push(piece);
        while let Some(f) = d.next_frame() {
            if let Frame::Message { payload, .. } = f {
                if let Ok(req) = Request::decode(payload.as_slice()) {
                    all_messages(&req.payload);
                }
                all_messages(&payload);
            }
        }
        assert!(d.pending() <= rest.len());
    }
});
