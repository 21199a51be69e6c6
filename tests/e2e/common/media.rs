//! ffmpeg as the application on both ends of a stream channel (Debian's `ffmpeg` package):
//! a sender that encodes a live test pattern with a tone and sends it as RTP with an
//! MPEG-TS payload (RFC 2250, payload type 33), and a receiver that decodes what reaches
//! it and counts the video frames and the decoding errors.
//!
//! ```text
//!   Source: lavfi testsrc 1280x720 25 fps + sine, 10 s, in real time (-re)
//!           ─► libx264 ultrafast zerolatency, a keyframe every 25 frames; AAC
//!           ─► rtp_mpegts ─► rtp://127.0.0.1:PORT   (RTCP sent to a port of the test's own)
//!   Sink:   SDP file (m=video PORT RTP/AVP 33) ─► ffmpeg decodes the video to null,
//!           -progress to a file (frame=N), the log with levels ([error] lines counted),
//!           and a copy of the transport stream (.ts) for a person to look at
//! ```
//!
//! The sink reads an SDP file rather than `rtp://` directly: given only a URL, ffmpeg
//! learns the payload type from the first packet and then opens the socket again, losing
//! the first second of the stream (and its first keyframe). Both run in a network
//! namespace when given one (`ip netns exec NS ffmpeg …`). Their logs and the copy of the
//! stream stay under the build's target directory (`CARGO_TARGET_TMPDIR/stream/NAME/`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Video frames the source sends: 10 s at 25 fps.
pub const FRAMES: u64 = 250;

/// Where a test's ffmpeg logs and copies go (emptied first): kept after the test.
pub fn log_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("stream")
        .join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn command(netns: Option<&str>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ffmpeg"]);
            c
        }
        None => Command::new("ffmpeg"),
    }
}

/// The sending ffmpeg.
pub struct Source {
    child: Option<Child>,
    log: PathBuf,
}

/// Starts ffmpeg sending the 10-second test pattern with a tone to `127.0.0.1:port` as RTP
/// (MPEG-TS payload, type 33) in real time; its RTCP goes to `rtcp_port`, which nothing
/// must carry (the stream channel carries the RTP port alone).
pub fn send(port: u16, rtcp_port: u16, netns: Option<&str>, dir: &Path) -> Source {
    let log = dir.join("source.log");
    let out = fs::File::create(&log).unwrap();
    let child = command(netns)
        .args(["-hide_banner", "-nostdin", "-loglevel", "repeat+level+info"])
        .args(["-re", "-f", "lavfi", "-i"])
        .arg("testsrc=size=1280x720:rate=25:duration=10")
        .args(["-re", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:sample_rate=48000:duration=10")
        .args(["-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "25", "-keyint_min", "25", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "96k"])
        .args(["-f", "rtp_mpegts"])
        .arg(format!("rtp://127.0.0.1:{port}?rtcpport={rtcp_port}"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg: {e} (the stream tests need Debian's ffmpeg)"));
    Source {
        child: Some(child),
        log,
    }
}

impl Source {
    /// Waits for the sender to finish its 10 seconds; panics with its log if it failed.
    pub fn wait(mut self) {
        let status = self.child.take().unwrap().wait().unwrap();
        assert!(
            status.success(),
            "the sending ffmpeg failed ({status}); see {}:\n{}",
            self.log.display(),
            super::net::tail(&fs::read_to_string(&self.log).unwrap_or_default())
        );
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The receiving ffmpeg.
pub struct Sink {
    child: Option<Child>,
    progress: PathBuf,
    log: PathBuf,
}

/// What the receiving ffmpeg decoded.
#[derive(Debug)]
pub struct Decoded {
    /// Video frames decoded.
    pub frames: u64,
    /// The `[error]` and `[fatal]` lines of its log (decoding errors, corrupt packets).
    pub errors: Vec<String>,
    /// Its log, for the failure message.
    pub log: PathBuf,
}

/// Starts ffmpeg receiving RTP (MPEG-TS payload) on UDP `port` (and RTCP on `port + 1`),
/// decoding the video; returns once its socket is bound, so that a sender started next
/// loses nothing. ffmpeg gives up after 10 s without a packet: start the sender soon.
pub fn receive(port: u16, netns: Option<&str>, dir: &Path) -> Sink {
    let sdp = dir.join("sink.sdp");
    fs::write(
        &sdp,
        format!(
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=hearing\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=video {port} RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\n"
        ),
    )
    .unwrap();
    let log = dir.join("sink.log");
    let progress = dir.join("sink.progress");
    let out = fs::File::create(&log).unwrap();
    let child = command(netns)
        .args(["-hide_banner", "-nostdin", "-loglevel", "repeat+level+info"])
        .args(["-protocol_whitelist", "file,rtp,udp", "-i"])
        .arg(&sdp)
        // every decoded frame once: no frame duplicated to fill a gap
        .args(["-map", "0:v", "-fps_mode", "passthrough", "-f", "null", "-"])
        .args(["-map", "0", "-c", "copy", "-f", "mpegts"])
        .arg(dir.join("received.ts"))
        .arg("-progress")
        .arg(format!("file:{}", progress.display()))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg: {e} (the stream tests need Debian's ffmpeg)"));
    let pid = child.id();
    let sink = Sink {
        child: Some(child),
        progress,
        log,
    };
    // bound once its namespace's UDP table lists the port (`ip netns exec` runs ffmpeg
    // under its own process id)
    let local = format!(":{port:04X}");
    let bound = || {
        ["udp", "udp6"].iter().any(|t| {
            fs::read_to_string(format!("/proc/{pid}/net/{t}"))
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .is_some_and(|a| a.ends_with(&local))
                })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bound() {
        assert!(
            Instant::now() < deadline,
            "the receiving ffmpeg did not bind port {port}; see {}",
            sink.log.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    sink
}

impl Sink {
    /// Frames decoded so far, from the last `frame=` line of the progress file.
    pub fn frames(&self) -> u64 {
        fs::read_to_string(&self.progress)
            .unwrap_or_default()
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("frame=")?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Once the sender is done: waits until no new frame was decoded for 2 s (the stream
    /// has drained through the gateway), stops ffmpeg with SIGINT (it finishes its outputs)
    /// and reads what it decoded.
    pub fn finish(mut self) -> Decoded {
        let mut last = (self.frames(), Instant::now());
        let give_up = Instant::now() + Duration::from_secs(60);
        while last.1.elapsed() < Duration::from_secs(2) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(100));
            let n = self.frames();
            if n != last.0 {
                last = (n, Instant::now());
            }
        }
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the receiving ffmpeg did not stop on SIGINT; see {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let errors = text
            .lines()
            // "[h264 @ 0x…] [error] error while decoding MB 0 34", or "[error] …" alone
            .filter(|l| l.contains("[error] ") || l.contains("[fatal] "))
            .map(str::to_string)
            .collect();
        Decoded {
            frames: self.frames(),
            errors,
            log: self.log.clone(),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Decoded {
    /// Asserts at least `percent` % of the source's frames were decoded, with no error.
    pub fn assert_good(&self, percent: u64) {
        let log = super::net::tail(&fs::read_to_string(&self.log).unwrap_or_default());
        assert!(
            self.frames * 100 >= FRAMES * percent,
            "{} of {FRAMES} frames decoded (want {percent} %); see {}:\n{log}",
            self.frames,
            self.log.display()
        );
        assert!(
            self.errors.is_empty(),
            "decoding errors: {:?}; see {}",
            self.errors,
            self.log.display()
        );
    }
}
