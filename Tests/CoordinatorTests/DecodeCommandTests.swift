import CaptureFiles
import Foundation
import SMCSynthesis
import SMCWire
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// `smcpair decode` end to end, as a user runs it.
@Suite struct DecodeCommand {
  let required = ["file", "frame", "time_ns", "interface", "src", "dst", "kind"]

  func synth(_ dir: TemporaryDirectory, _ arguments: [String]) throws -> String {
    let path = dir.file("s\(arguments.joined().hashValue & 0xFFFF).pcapng")
    let result = try Tools.run([try Tools.product("smcpair-synth"), "--out", path] + arguments)
    #expect(result.status == 0, "\(result.stderr)")
    return path
  }

  func lines(_ output: String) throws -> [[String: Any]] {
    try output.split(separator: "\n").map { line in
      try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }
  }

  @Test func jsonLinesFollowTheContract() throws {
    let dir = try TemporaryDirectory()
    let path = try synth(dir, ["--scenario", "mixed", "--connections", "6", "--messages", "2"])
    let result = try Tools.run([try Tools.product("smcpair"), "decode", "--json", path])
    #expect(result.status == 0, "\(result.stderr)")
    let events = try lines(result.stdout)
    #expect(!events.isEmpty)
    for event in events {
      for key in required { #expect(event[key] != nil, "missing \(key) in \(event)") }
      #expect(["tcp", "clc", "cdc", "data", "llc"].contains(event["kind"] as? String ?? ""))
      #expect((event["frame"] as? Int ?? 0) >= 1)
      #expect(event["file"] as? String == path)
    }
    let byKind = Dictionary(grouping: events) { $0["kind"] as! String }
    #expect(byKind["clc"]?.count == 4 * 3 + 2)
    #expect(byKind["cdc"]?.count == 4 * 4)
    #expect(byKind["data"]?.count == 4 * 2)
    let decline = try #require(byKind["clc"]?.first { $0["clc_type"] as? String == "decline" })
    #expect(decline["decline_code"] as? String == "0x03030002")
    #expect(decline["decline_reason"] as? String == "NOSMCRDEV")
    let accept = try #require(byKind["clc"]?.first { $0["clc_type"] as? String == "accept" })
    #expect(accept["clc_path"] as? String == "R")
    #expect(accept["alert_token"] is Int)
    #expect(accept["rmbe_size"] as? Int == 16384)
    #expect(accept["qp_number"] is Int)
    #expect((accept["peer_id"] as? String)?.count == 16)
    let cdc = try #require(byKind["cdc"]?.first)
    for key in [
      "mode", "seqno", "token", "prod_wrap", "prod_count", "cons_wrap", "cons_count", "flags", "conn_state",
    ] {
      #expect(cdc[key] != nil, "cdc missing \(key)")
    }
    #expect(byKind["data"]?.allSatisfy { $0["length"] as? Int == 1000 } == true)
    #expect(byKind["tcp"]?.contains { $0["smc_option"] as? Bool == true } == true)
    // The human summary goes to standard error in JSON mode.
    #expect(result.stderr.contains("connections: 6 (SMC-R 2, SMC-D 2, fallback 2)"))
    #expect(result.stderr.contains("header length 16 bytes (calibrated"))
  }

  @Test func incompleteHandshakeAndRetransmissionInOutputAndSummary() throws {
    let editcap = try Tools.require("editcap")
    let dir = try TemporaryDirectory()
    let original = "/work/shared/data/real-smc/hwipl-smcr-ipv4-lo.pcap"
    // Cut after the Accept (frames 8-9 deleted), the Accept (frame 6) repeated 0.5 s later at
    // the end of the file (after the declined connection, 4.6 s).
    let cut = dir.file("cut.pcap")
    #expect(try Tools.run([editcap, original, cut, "8-9"]).status == 0)
    let accept = dir.file("accept.pcap")
    #expect(try Tools.run([editcap, "-r", "-t", "0.5", original, accept, "6"]).status == 0)
    let both = dir.file("both.pcap")
    let mergecap = try Tools.require("mergecap")
    #expect(try Tools.run([mergecap, "-a", "-F", "pcap", "-w", both, cut, accept]).status == 0)
    let result = try Tools.run([try Tools.product("smcpair"), "decode", "--json", both])
    #expect(result.status == 0, "\(result.stderr)")
    let accepts = try lines(result.stdout).filter { $0["clc_type"] as? String == "accept" }
    #expect(accepts.count == 2)
    #expect(accepts.first?["retransmission"] == nil)
    #expect(accepts.last?["retransmission"] as? Bool == true)
    #expect(accepts.last?["frame"] as? Int == 13)
    let declineIndex = try lines(result.stdout).firstIndex { $0["clc_type"] as? String == "decline" }
    let retransmittedIndex = try lines(result.stdout).firstIndex { $0["retransmission"] as? Bool == true }
    #expect(try #require(retransmittedIndex) < (try #require(declineIndex)))
    #expect(result.stderr.contains("connections: 2 (fallback 1, incomplete 1)"), "\(result.stderr)")
    #expect(result.stderr.contains("incomplete: CLC Confirm not in this capture"), "\(result.stderr)")
    #expect(result.stderr.contains("CLC retransmissions: 1"), "\(result.stderr)")
    // The repeated Accept belongs in time before the declined connection: it is printed there.
    #expect(result.stderr.contains("time order: 1 packet was out of time order"), "\(result.stderr)")
  }

  @Test func tableAndSummaryForPeople() throws {
    let dir = try TemporaryDirectory()
    let path = try synth(dir, ["--scenario", "decline", "--messages", "1"])
    let result = try Tools.run([try Tools.product("smcpair"), "decode", path])
    #expect(result.status == 0)
    #expect(result.stdout.contains("decline v1 SMCR"))
    #expect(result.stdout.contains("reason=NOSMCRDEV (0x03030002, no SMC-R device found)"))
    #expect(
      result.stdout.contains(
        "fallback to TCP: CLC Decline NOSMCRDEV [0x03030002: no SMC-R device found], declined by 10.0.0.2:8000"
      ))
    #expect(result.stdout.contains("dump records: no SMC dump records"))
  }

  @Test func sll2CaptureGivesTheSameEventsAsEthernet() throws {
    let dir = try TemporaryDirectory()
    let eth = try synth(dir, ["--scenario", "mixed", "--connections", "6", "--link", "ethernet"])
    let any = try synth(dir, ["--scenario", "mixed", "--connections", "6", "--link", "sll2"])
    let smcpair = try Tools.product("smcpair")
    func strip(_ path: String) throws -> [String] {
      let result = try Tools.run([smcpair, "decode", "--json", path])
      #expect(result.status == 0)
      return try lines(result.stdout).map { event in
        var e = event
        e["file"] = nil
        e["interface"] = nil
        e["direction"] = nil
        return String(describing: e.sorted { $0.key < $1.key })
      }
    }
    let a = try strip(eth)
    let b = try strip(any)
    #expect(a.count == b.count)
    #expect(a == b)
  }

  @Test func dumpHeaderOverride() throws {
    let dir = try TemporaryDirectory()
    let path = try synth(dir, ["--dump-header-len", "24"])
    let smcpair = try Tools.product("smcpair")
    let calibrated = try Tools.run([smcpair, "decode", path])
    #expect(calibrated.stdout.contains("header length 24 bytes (calibrated from 8 CDC records)"))
    let forced = try Tools.run([smcpair, "decode", "--dump-header-len", "24", path])
    #expect(forced.stdout.contains("header length 24 bytes (from --dump-header-len)"))
    #expect(forced.stdout.contains("cdc   SMC-R seq=1"))
  }

  @Test func exitCodes() throws {
    let dir = try TemporaryDirectory()
    let smcpair = try Tools.product("smcpair")
    // 64: usage.
    #expect(try Tools.run([smcpair, "decode"]).status == 64)
    let bad = try Tools.run([smcpair, "decode", "--dump-header-len", "2", "x.pcap"])
    #expect(bad.status == 64)
    #expect(bad.stderr.contains("--dump-header-len must be between 8 and 1024"))
    // 66: missing file, named with what went wrong.
    let missing = try Tools.run([smcpair, "decode", dir.file("nope.pcap")])
    #expect(missing.status == 66)
    #expect(missing.stderr.contains("nope.pcap: cannot open: No such file or directory"))
    // 65: damaged file; events before the damage are still printed, salvage is reported.
    let path = try synth(dir, ["--connections", "3"])
    let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    let cut = dir.file("cut.pcapng")
    try bytes.prefix(bytes.count - 30).write(to: URL(fileURLWithPath: cut))
    let damaged = try Tools.run([smcpair, "decode", "--json", cut])
    #expect(damaged.status == 65)
    #expect(damaged.stderr.contains("byte offset"))
    #expect(damaged.stderr.contains("read intact"))
    #expect(try lines(damaged.stdout).count > 20)
    // 65: not a capture at all.
    let text = dir.file("notes.txt")
    try Data("just text".utf8).write(to: URL(fileURLWithPath: text))
    let notCapture = try Tools.run([smcpair, "decode", text])
    #expect(notCapture.status == 65)
    #expect(notCapture.stderr.contains("not a pcap or pcapng file"))
    // 66 before 65: the first file that cannot be opened decides.
    #expect(try Tools.run([smcpair, "decode", "--quiet", dir.file("nope.pcap"), text]).status == 66)
    // 0: help teaches, exit statuses included.
    let help = try Tools.run([smcpair, "decode", "--help"])
    #expect(help.status == 0)
    #expect(help.stdout.contains("Examples:"))
    let words = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    #expect(
      words.contains("66 a file cannot be opened") && words.contains("65 a file is not a capture"), "\(words)"
    )
  }

  /// A FIFO with no writer used to block `open` forever, and a pipe (`/dev/stdin`) read as
  /// an empty file: both are refused as not regular files (exit 66), before any read.
  /// `timeout` only turns a hang into a failure; no time is measured.
  @Test func pipesAndFIFOsAreRefusedNotWaitedOn() throws {
    let dir = try TemporaryDirectory()
    let smcpair = try Tools.product("smcpair")
    let fifo = dir.file("capture.fifo")
    try #require(mkfifo(fifo, 0o600) == 0)
    let fromFIFO = try Tools.run(["timeout", "60", smcpair, "decode", fifo])
    #expect(fromFIFO.status == 66, "\(fromFIFO.stderr)")
    #expect(fromFIFO.stderr.contains("\(fifo): cannot open: is a pipe or FIFO, not a regular capture file"))
    let capture = try Data(contentsOf: URL(fileURLWithPath: try synth(dir, ["--connections", "1"])))
    let fromPipe = try Tools.run(["timeout", "60", smcpair, "decode", "/dev/stdin"], stdin: capture)
    #expect(fromPipe.status == 66, "\(fromPipe.stderr)")
    #expect(fromPipe.stderr.contains("is a pipe or FIFO"), "\(fromPipe.stderr)")
    let directory = try Tools.run([smcpair, "decode", dir.path])
    #expect(directory.status == 66)
    #expect(directory.stderr.contains("is a directory"))
  }

  @Test func nonSMCTrafficAndGarbageAreReportedNotFatal() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("noise.pcapng")
    let writer = try PcapngWriter(path: path, application: "t")
    try writer.addInterface(InterfaceDescription(name: "eth0", linkType: .ethernet))
    try writer.addInterface(InterfaceDescription(name: "weird", linkType: LinkType(rawValue: 147)))
    var rng = SeededRandom(seed: 3)
    let a = Endpoint(IPAddress(ipv4: 0x0A00_0001), 1111)
    let b = Endpoint(IPAddress(ipv4: 0x0A00_0002), 2222)
    for i in 0..<200 {
      var payload = (0..<Int(rng.next() % 120)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      if i % 3 == 0 && payload.count > 8 { payload.replaceSubrange(0..<4, with: [0xCF, 0xD3, 0xE7, 0xA5]) }
      if i % 5 == 0 && payload.count > 8 {
        payload.replaceSubrange(0..<5, with: [0xE2, 0xD4, 0xC3, 0xD9, 2])
      }
      let frame =
        i % 2 == 0
        ? FrameBuilder.udp(sourceMAC: 1, destinationMAC: 2, source: a, destination: b, payload: payload)
        : FrameBuilder.tcp(
          sourceMAC: 1, destinationMAC: 2, source: a, destination: b,
          segment: .init(sequence: UInt32(i), acknowledgment: 0, flags: [.ack]), payload: payload)
      try writer.writePacket(interface: i % 7 == 0 ? 1 : 0, timestampNanoseconds: Int64(i), bytes: frame)
      // Frames cut inside their headers.
      try writer.writePacket(interface: 0, timestampNanoseconds: Int64(i), bytes: Array(frame.prefix(i % 40)))
    }
    try writer.close()
    let result = try Tools.run([try Tools.product("smcpair"), "decode", path])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("undecoded link types: 147"))
    #expect(result.stdout.contains("malformed:"))
  }
}
