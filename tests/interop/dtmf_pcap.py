#!/usr/bin/env python3
"""Writes a pcap of RTP RFC 4733 telephone-events (payload type 101) keying
the given digits, for SIPp's play_pcap_audio (bridge_daemon.sh).

    dtmf_pcap.py OUT.pcap 2718281#

Each key is one event (RFC 4733 section 2.5): packets every 50 ms with
growing duration, the end packet sent three times, then 200 ms of gap
before the next key. Addresses and ports are placeholders: SIPp rewrites
them to the call's media addresses.
"""
import struct
import sys

EVENTS = {str(d): d for d in range(10)}
EVENTS.update({"*": 10, "#": 11})
PT = 101
SSRC = 0x2718281F


def udp_frame(payload):
    """Ethernet + IPv4 + UDP around an RTP packet (checksums left to SIPp)."""
    udp = struct.pack("!HHHH", 40000, 40002, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    csum = 0
    for i in range(0, 20, 2):
        csum += (ip[i] << 8) | ip[i + 1]
    while csum > 0xFFFF:
        csum = (csum & 0xFFFF) + (csum >> 16)
    ip = ip[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip[12:]
    eth = b"\x00" * 12 + b"\x08\x00"
    return eth + ip + udp


def packets(keys):
    """(time in seconds, RTP packet) for every packet of every key."""
    seq, ts, t = 1, 8000, 0.0
    for key in keys:
        event = EVENTS[key]
        marker = True
        for step in range(1, 5):  # 50, 100, 150, 200 ms of tone
            duration = step * 400
            end = step == 4
            repeats = 3 if end else 1
            for _ in range(repeats):
                header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | PT,
                                     seq & 0xFFFF, ts, SSRC)
                body = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
                yield t, header + body
                marker = False
                seq += 1
            t += 0.05
        t += 0.2
        ts += 3200  # the next event starts 400 ms later


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: dtmf_pcap.py OUT.pcap DIGITS")
    out, keys = sys.argv[1], sys.argv[2]
    if any(k not in EVENTS for k in keys):
        sys.exit("digits must be 0-9, * or #")
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, rtp in packets(keys):
            frame = udp_frame(rtp)
            sec, usec = int(t), int(round((t - int(t)) * 1e6))
            f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            f.write(frame)


if __name__ == "__main__":
    main()
