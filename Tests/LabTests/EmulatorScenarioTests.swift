import CaptureFiles
import Foundation
import SMCWire
import TestSupport
import Testing

/// One dump record as a host captured it.
struct DumpRecordSeen: Equatable {
  var source: Endpoint
  var destination: Endpoint
  var isCDC: Bool
  var body: [UInt8]
}

/// Reads the dump records of a capture of a stand-in device (16-byte header, type byte at 7,
/// CDC = 2, as the emulator writes by default).
func dumpRecords(_ path: String) throws -> [DumpRecordSeen] {
  let reader = try CaptureFileReader(path: path)
  var out: [DumpRecordSeen] = []
  while let packet = try reader.next() {
    let frame = FrameDecoder.decode(packet.data, linkType: reader.interfaces[packet.interface].linkType)
    guard frame.isUDP, DumpHeaderCalibrator.isDumpRecord(frame.payload), frame.payload.count >= 16 else {
      continue
    }
    out.append(
      DumpRecordSeen(
        source: frame.sourceEndpoint, destination: frame.destinationEndpoint, isCDC: frame.payload.u8(7) == 2,
        body: Array(frame.payload.slice(16, frame.payload.count - 16))))
  }
  return out
}

/// Runs one emulator scenario between lab hosts h1 (client) and h2 (server) with tcpdump on
/// both hosts' data NIC (data0: the lab's data network, like a RoCE subnet) and stand-in dump
/// device.
struct ScenarioRun {
  var lab: TestLab
  var dir: TemporaryDirectory
  var clientReport: String
  var serverReport: String

  func file(_ host: String, _ device: String) -> String { dir.file("\(host)-\(device).pcap") }

  /// The NIC captures are filtered to the SMC connection (port 7000), as a user would capture
  /// it; the emulated fabric on port 7001 stands for RDMA/ISM, which a NIC capture never sees.
  static func run(_ scenario: String, extra: [String] = [], timeout: Double = 60) throws -> ScenarioRun {
    let lab = try TestLab(hosts: 2, tag: "s")
    let dir = try TemporaryDirectory("smcpair-scenario")
    let tcpdump = try Tools.require("tcpdump")
    var captures: [BackgroundProcess] = []
    for (index, host) in lab.status.hosts.enumerated() {
      for device in [host.trafficInterface, host.dump_device] {
        let name = device == host.trafficInterface ? "nic" : "dump"
        let path = dir.file("\(host.name)-\(name)")
        let filter = device == host.trafficInterface ? ["tcp port 7000"] : []
        // In immediate mode libpcap uses TPACKET_V2, whose ring has fixed-size slots: the
        // snapshot length or the device's MTU (65535 on the stand-in), whichever is smaller,
        // so only ~4,000 slots in 256 MiB. The wrap scenario's bursts of dump records (a
        // sender not held back by Nagle) overflowed them on a busy machine. Dump records are
        // at most 8 KiB of data plus headers.
        let snapshot = device == host.trafficInterface ? [] : ["-s", "9000"]
        captures.append(
          try lab.start(
            index,
            [tcpdump, "-i", device, "-B", "262144"] + snapshot
              + ["--immediate-mode", "-U", "-n", "-w", path + ".pcap"] + filter,
            log: path))
        try waitFor("listening on", in: path + ".err")
      }
    }
    let server = try lab.start(
      1, [lab.smcpair, "lab", "peer", "server", "--port", "7000", "--timeout", "\(timeout)"],
      log: dir.file("server"))
    let client = try lab.start(
      0,
      [
        lab.smcpair, "lab", "peer", "client", "--connect", "\(lab.status.hosts[1].trafficAddress):7000",
        "--scenario",
        scenario, "--seed", "42", "--timeout", "\(timeout)",
      ] + extra, log: dir.file("client"))
    let clientStatus = client.wait(seconds: timeout + 30)
    let serverStatus = server.wait(seconds: 10)
    waitUntilFilesStopGrowing(
      lab.status.hosts.flatMap { host in ["nic", "dump"].map { dir.file("\(host.name)-\($0).pcap") } })
    for capture in captures { capture.stop() }
    let clientReport = (try? String(contentsOfFile: dir.file("client.out"), encoding: .utf8)) ?? ""
    let serverReport = (try? String(contentsOfFile: dir.file("server.out"), encoding: .utf8)) ?? ""
    guard clientStatus == 0, serverStatus == 0 else {
      client.stop()
      server.stop()
      let errors =
        ((try? String(contentsOfFile: dir.file("client.err"), encoding: .utf8)) ?? "")
        + ((try? String(contentsOfFile: dir.file("server.err"), encoding: .utf8)) ?? "")
      throw NamespaceError(
        message:
          "emulator failed (client \(String(describing: clientStatus)), server \(String(describing: serverStatus))): \(errors)"
      )
    }
    return ScenarioRun(lab: lab, dir: dir, clientReport: clientReport, serverReport: serverReport)
  }

  static func waitFor(_ text: String, in path: String) throws {
    for _ in 0..<500 {
      if let content = try? String(contentsOfFile: path, encoding: .utf8), content.contains(text) { return }
      usleep(10_000)
    }
    throw NamespaceError(message: "tcpdump did not start: \(path)")
  }

  /// One field of the CLC messages tshark sees on the client's NIC.
  func tsharkField(_ field: String) throws -> [String] {
    let result = try Tools.run([
      try Tools.require("tshark"), "-o", "tcp.try_heuristic_first:TRUE", "-r", file("h1", "nic"), "-Y",
      "smc.clc_msg", "-T", "fields", "-e", field,
    ])
    return result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter {
      !$0.isEmpty
    }
  }

  /// CLC messages tshark sees on the client's NIC: (type, length).
  func tsharkCLC() throws -> [(Int, Int)] {
    let result = try Tools.run([
      try Tools.require("tshark"), "-o", "tcp.try_heuristic_first:TRUE", "-r", file("h1", "nic"), "-Y",
      "smc.clc_msg", "-T", "fields", "-e", "smc.clc_msg", "-e", "smc.length",
    ])
    return result.stdout.split(separator: "\n").compactMap { line in
      let fields = line.split(separator: "\t")
      guard fields.count == 2, let t = Int(fields[0]), let l = Int(fields[1]) else { return nil }
      return (t, l)
    }
  }

  /// `smcpair decode --json` of one host's two captures.
  func decode(_ host: String) throws -> [[String: Any]] {
    let result = try Tools.run([lab.smcpair, "decode", "--json", file(host, "nic"), file(host, "dump")])
    #expect(result.status == 0, "\(result.stderr)")
    return result.stdout.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
  }

  var clientAddress: String { lab.status.hosts[0].trafficAddress }
  var serverAddress: String { lab.status.hosts[1].trafficAddress }

  /// (sent by `from` as its host captured them, received as the other host captured them).
  func directions() throws -> [(sent: [DumpRecordSeen], received: [DumpRecordSeen])] {
    let h1 = try dumpRecords(file("h1", "dump"))
    let h2 = try dumpRecords(file("h2", "dump"))
    let fromClient = { (r: DumpRecordSeen) in r.source.address.description == clientAddress }
    let fromServer = { (r: DumpRecordSeen) in r.source.address.description == serverAddress }
    return [(h1.filter(fromClient), h2.filter(fromClient)), (h2.filter(fromServer), h1.filter(fromServer))]
  }
}

/// nil when equal, else a short account of the first difference (never the whole arrays).
func difference(_ a: [DumpRecordSeen], _ b: [DumpRecordSeen]) -> String? {
  if a == b { return nil }
  let index = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
  func show(_ r: DumpRecordSeen?) -> String {
    guard let r else { return "nothing" }
    return
      "\(r.isCDC ? "CDC" : "data") \(r.source)->\(r.destination) \(r.body.prefix(16).map { String($0, radix: 16) })"
  }
  return
    "counts \(a.count) vs \(b.count); first difference at \(index): \(show(index < a.count ? a[index] : nil)) vs \(show(index < b.count ? b[index] : nil))"
}

func seqnos(_ records: [DumpRecordSeen]) -> [UInt16] {
  records.filter(\.isCDC).map { UInt16($0.body[2]) << 8 | UInt16($0.body[3]) }
}

@Suite(.serialized) struct EmulatorScenarios {
  static let smcRScenarios = ["pingpong", "bulk", "both", "cdc-loss", "dup-seqno", "rwwi", "failover"]

  @Test(arguments: smcRScenarios)
  func smcRScenario(_ scenario: String) throws {
    let run = try ScenarioRun.run(scenario)
    // tshark sees the emulator's handshake with the intended types and lengths.
    let clc = try run.tsharkCLC()
    #expect(clc.map(\.0) == [1, 2, 3], "\(clc)")
    #expect(clc.map(\.1) == [52, 68, 68], "\(clc)")
    // smcpair decode shows the handshake and the records on both hosts.
    for host in ["h1", "h2"] {
      let events = try run.decode(host)
      let types = events.filter { $0["kind"] as? String == "clc" }.compactMap { $0["clc_type"] as? String }
      #expect(types == ["proposal", "accept", "confirm"], "\(host)")
      #expect(events.contains { $0["kind"] as? String == "cdc" }, "\(host)")
      let accept = events.first { $0["clc_type"] as? String == "accept" }
      let cdcFromClient = events.first {
        $0["kind"] as? String == "cdc" && ($0["src"] as? String)?.hasPrefix(run.clientAddress + ":") == true
      }
      // The client's CDC messages carry the server's alert token from the Accept.
      #expect(accept?["alert_token"] as? Int == cdcFromClient?["token"] as? Int, "\(host)")
    }
    // tshark reads the alert tokens and buffer sizes the peers then use in their CDC messages.
    let serverToken = try run.tsharkField("smc.accept.server.rmb.element.alert.token").first.flatMap {
      UInt32($0.dropFirst(2), radix: 16)
    }
    let clientToken = try run.tsharkField("smc.client.rmb.element.alert.token").first.flatMap {
      UInt32($0.dropFirst(2), radix: 16)
    }
    #expect(try run.tsharkField("smc.accept.rmb.buffer.size") == ["1"])
    let directions = try run.directions()
    func token(_ record: DumpRecordSeen) -> UInt32 {
      (4..<8).reduce(UInt32(0)) { $0 << 8 | UInt32(record.body[$1]) }
    }
    #expect(directions[0].sent.filter(\.isCDC).allSatisfy { token($0) == serverToken })
    #expect(directions[1].sent.filter(\.isCDC).allSatisfy { token($0) == clientToken })
    for (index, direction) in directions.enumerated() {
      #expect(!direction.sent.isEmpty, "direction \(index)")
      switch scenario {
      case "cdc-loss":
        // Every received record was sent, in order; some sent ones never arrived.
        var iterator = direction.sent.makeIterator()
        var matched = 0
        for record in direction.received {
          while let next = iterator.next() {
            if next == record {
              matched += 1
              break
            }
          }
        }
        #expect(matched == direction.received.count)
        if index == 0 { #expect(direction.received.count < direction.sent.count) }
      case "dup-seqno":
        var deduplicated: [DumpRecordSeen] = []
        for record in direction.sent where deduplicated.last != record || !record.isCDC {
          deduplicated.append(record)
        }
        #expect(difference(deduplicated, direction.received) == nil)
        if index == 0 {
          let s = seqnos(direction.sent)
          #expect(zip(s, s.dropFirst()).contains { $0 == $1 }, "a seqno shown twice by the sender")
        }
      default:
        // The sender's and the receiver's records are byte-identical.
        #expect(difference(direction.sent, direction.received) == nil, "direction \(index)")
      }
    }
    let clientSeqnos = seqnos(directions[0].sent)
    switch scenario {
    case "rwwi":
      #expect(clientSeqnos.allSatisfy { $0 == 0 })
    case "failover":
      // Producer cursor (wrap @10, count @12) as one number.
      let cursors = directions[0].sent.filter(\.isCDC).map { record in
        (10..<16).reduce(UInt64(0)) { $0 << 8 | UInt64(record.body[$1]) }
      }
      #expect(zip(cursors, cursors.dropFirst()).contains { $1 < $0 }, "producer cursor steps back")
      #expect(zip(clientSeqnos, clientSeqnos.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
    case "both":
      #expect(directions[1].sent.contains { !$0.isCDC })
    case "bulk":
      #expect(!directions[1].sent.contains { !$0.isCDC }, "the server only sends cursor updates")
    default:
      break
    }
  }

  @Test func smcDScenario() throws {
    let run = try ScenarioRun.run("smcd")
    let clc = try run.tsharkCLC()
    #expect(clc.map(\.0) == [1, 2, 3])
    #expect(clc.map(\.1) == [92, 48, 48])
    let events = try run.decode("h2")
    #expect(
      events.filter { $0["kind"] as? String == "cdc" }.allSatisfy {
        $0["mode"] as? String == "D" && $0["seqno"] == nil
      })
    for direction in try run.directions() {
      let sent = direction.sent.filter(\.isCDC)
      let received = direction.received.filter(\.isCDC)
      #expect(sent.allSatisfy { $0.body.count == 32 })
      // Received SMC-D records carry only the cursors faithfully.
      #expect(sent.map { Array($0.body[8..<24]) } == received.map { Array($0.body[8..<24]) })
      #expect(direction.sent.filter { !$0.isCDC } == direction.received.filter { !$0.isCDC })
    }
  }

  @Test func declineFallsBackToTCP() throws {
    let run = try ScenarioRun.run("decline", extra: ["--reason", "NOSMCDEV", "--messages", "4"])
    let clc = try run.tsharkCLC()
    #expect(clc.map(\.0) == [1, 4])
    #expect(clc.map(\.1) == [52, 28])
    let events = try run.decode("h1")
    let decline = events.first { $0["clc_type"] as? String == "decline" }
    #expect(decline?["decline_reason"] as? String == "NOSMCDEV")
    let dataSegments = events.filter {
      $0["kind"] as? String == "tcp" && ($0["payload_length"] as? Int ?? 0) > 0
        && ($0["dst"] as? String)?.hasSuffix(":7000") == true
    }
    // Proposal + 4 messages of 1000 bytes over TCP.
    #expect(dataSegments.reduce(0) { $0 + ($1["payload_length"] as? Int ?? 0) } == 52 + 4000)
    #expect(try dumpRecords(run.file("h1", "dump")).isEmpty)
    let result = try Tools.run([run.lab.smcpair, "decode", run.file("h1", "nic")])
    #expect(result.stdout.contains("fallback to TCP: CLC Decline NOSMCDEV"))
  }

  @Test func seqnoWrapsPast65535() throws {
    let run = try ScenarioRun.run("wrap", timeout: 120)
    let clc = try run.tsharkCLC()
    #expect(clc.map(\.0) == [1, 2, 3])
    let sent = seqnos(try run.directions()[0].sent)
    #expect(sent.count > 65_535)
    #expect(zip(sent, sent.dropFirst()).contains { $0 == 0xFFFF && $1 == 0 })
    let directions = try run.directions()
    #expect(difference(directions[0].sent, directions[0].received) == nil)
  }

  @Test func calibrationFindsAnotherHeaderLength() throws {
    let run = try ScenarioRun.run("pingpong", extra: ["--dump-header-len", "24", "--messages", "3"])
    // The server wrote 16-byte headers, the client 24: each capture calibrates on its own.
    let h1 = try Tools.run([run.lab.smcpair, "decode", run.file("h1", "dump")])
    #expect(h1.stdout.contains("header length 24 bytes (calibrated"), "\(h1.stdout)")
    let h2 = try Tools.run([run.lab.smcpair, "decode", run.file("h2", "dump")])
    #expect(h2.stdout.contains("header length 16 bytes (calibrated"))
  }
}
