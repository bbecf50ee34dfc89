//! The b2bua RTP relay: cost per packet of the relay logic alone, and of a
//! whole hop over loopback (receive on leg A's socket, relay, send on leg
//! B's socket, receive at the far end).
//!
//! `cargo bench --bench relay -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::UdpSocket;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dialgate::bridge::relay::{Leg, LegPayloads, Relay};
use dialgate::sip::sdp::Codec;

fn packet(seq: u16, ssrc: u32) -> [u8; 172] {
    let mut p = [0xffu8; 172];
    p[0] = 0x80;
    p[1] = 0;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

fn relay() -> Relay {
    Relay::new(
        LegPayloads {
            codec: Codec::Pcmu,
            audio_pt: 0,
            event_pt: Some(101),
        },
        LegPayloads {
            codec: Codec::Pcmu,
            audio_pt: 0,
            event_pt: Some(96),
        },
    )
    .expect("same codec")
}

fn relay_logic(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(1));
    let mut r = relay();
    let mut out = [0u8; 1500];
    let mut seq = 0u16;
    g.bench_function("forward_audio", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let p = packet(seq, 7);
            black_box(r.forward(Leg::Caller, black_box(&p), &mut out))
        })
    });
    let mut r = relay();
    let mut seq = 0u16;
    g.bench_function("forward_event_renumbered", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let mut p = packet(seq, 7);
            p[1] = 101;
            black_box(r.forward(Leg::Caller, black_box(&p[..16]), &mut out))
        })
    });
    g.finish();
}

fn relay_loopback(c: &mut Criterion) {
    let bind = || UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    let (caller, leg_a, leg_b, bridge) = (bind(), bind(), bind(), bind());
    caller
        .connect(leg_a.local_addr().expect("addr"))
        .expect("connect");
    leg_b
        .connect(bridge.local_addr().expect("addr"))
        .expect("connect");
    let mut r = relay();
    let mut inbuf = [0u8; 1500];
    let mut out = [0u8; 1500];
    let mut seq = 0u16;
    let mut g = c.benchmark_group("relay_loopback");
    g.throughput(Throughput::Elements(1));
    g.bench_function("send_recv_relay_send_recv", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            caller.send(&packet(seq, 7)).expect("send");
            let n = leg_a.recv(&mut inbuf).expect("recv");
            let Some(received) = inbuf.get(..n) else {
                return;
            };
            if let Ok(m) = r.forward(Leg::Caller, received, &mut out) {
                leg_b.send(&out[..m]).expect("send");
                black_box(bridge.recv(&mut inbuf).expect("recv"));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, relay_logic, relay_loopback);
criterion_main!(benches);
