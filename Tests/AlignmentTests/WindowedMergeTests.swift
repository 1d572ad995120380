import CaptureFiles
import Foundation
import TestSupport
import Testing

@testable import Alignment

/// `smcpair merge` pairs within a window while reading and writes every output from its
/// notes; `--pair-in-memory` pairs in memory. Both must give the same alignment, the same
/// merged file, timeline and findings.
@Suite(.serialized) struct WindowedMerge {
  struct MergedPacket: Equatable {
    var interface: String
    var time: Int64
    var data: [UInt8]
    var direction: PacketDirection
    var packetID: UInt64?
    /// The comment with the pair number taken out.
    var comment: String
  }

  static func read(_ path: String) throws -> [MergedPacket] {
    let reader = try CaptureFileReader(path: path)
    var packets: [MergedPacket] = []
    while let packet = try reader.next() {
      let comment = packet.comments.first ?? ""
      packets.append(
        MergedPacket(
          interface: reader.interfaces[packet.interface].name ?? "", time: packet.timestampNanoseconds,
          data: Array(packet.data), direction: packet.direction, packetID: packet.packetID,
          comment: comment.replacingOccurrences(
            of: #"pair \d+:"#, with: "pair N:", options: .regularExpression)))
    }
    return packets
  }

  /// Writes both sides of `connections` synthetic conversations; returns the two paths.
  @discardableResult
  static func sides(
    _ dir: TemporaryDirectory, connections: Int, messages: Int, size: Int = 200, extra: [String] = []
  ) throws -> (String, String) {
    let synth = try Tools.product("smcpair-synth")
    for side in ["client", "server"] {
      let result = try Tools.run(
        [
          synth, "--out", dir.file("\(side).pcapng"), "--side", side, "--scenario", "mixed", "--connections",
          "\(connections)", "--messages", "\(messages)", "--size", "\(size)",
        ] + extra)
      try #require(result.status == 0, "\(result.stderr)")
    }
    return (dir.file("client.pcapng"), dir.file("server.pcapng"))
  }

  static func merge(_ client: String, _ server: String, out: String, formats: String, extra: [String] = [])
    throws -> [String: Any]
  {
    let result = try Tools.run(
      [try Tools.product("smcpair"), "merge", client, server, "--out", out, "--formats", formats] + extra)
    try #require(result.status == 0, "\(result.stderr)")
    return try json(out + "/alignment.json")
  }

  /// Compares the two merges: the same alignment, the same packets in the same order, and
  /// packet ids that name the same pairs (the numbering may differ).
  static func expectSame(_ dir: TemporaryDirectory, windowed: [String: Any], inMemory: [String: Any]) throws {
    for key in [
      "offset_ns", "offset_lower_ns", "offset_upper_ns", "skew_ppm", "skew_lower_ppm", "skew_upper_ppm",
    ] {
      let a = try #require(windowed[key] as? Double, "\(key) in \(windowed)")
      let b = try #require(inMemory[key] as? Double, "\(key) in \(inMemory)")
      #expect(abs(a - b) <= 0.01, "\(key): windowed \(a), in memory \(b)")
    }
    for key in ["verdict", "causality_violations", "client_packets", "server_packets", "reference_ns"] {
      #expect("\(windowed[key] ?? "-")" == "\(inMemory[key] ?? "-")", "\(key)")
    }
    #expect(windowed["pairs"] as? [String: Int] == inMemory["pairs"] as? [String: Int])
    #expect(windowed["client_addresses"] as? [String] == inMemory["client_addresses"] as? [String])
    let a = try read(dir.file("windowed/merged.pcapng"))
    let b = try read(dir.file("memory/merged.pcapng"))
    #expect(a.count == b.count)
    var idMap: [UInt64: UInt64] = [:]
    for (x, y) in zip(a, b) {
      #expect(
        x.interface == y.interface && x.time == y.time && x.data == y.data && x.direction == y.direction)
      #expect(x.comment == y.comment)
      #expect((x.packetID == nil) == (y.packetID == nil))
      if let i = x.packetID, let j = y.packetID {
        #expect(idMap[i, default: j] == j, "packet id \(i) names one pair")
        idMap[i] = j
      }
    }
    #expect(Set(idMap.values).count == idMap.count, "ids map one to one")
  }

  /// Merges into dir/windowed (`--formats pcapng`) and dir/memory (pcapng and report,
  /// `--pair-in-memory`), expects
  /// the windowed one to have needed no fallback and both to agree; returns both alignments.
  @discardableResult
  static func mergeBothWays(
    _ dir: TemporaryDirectory, _ client: String, _ server: String, extra: [String] = []
  ) throws -> (windowed: [String: Any], inMemory: [String: Any]) {
    let windowed = try merge(client, server, out: dir.file("windowed"), formats: "pcapng", extra: extra)
    #expect((windowed["warnings"] as? [String])?.isEmpty == true, "\(windowed)")
    let inMemory = try merge(
      client, server, out: dir.file("memory"), formats: "pcapng,report", extra: extra + ["--pair-in-memory"])
    try expectSame(dir, windowed: windowed, inMemory: inMemory)
    return (windowed, inMemory)
  }

  @Test(arguments: [
    (0.0, "pcapng", [String]()), (3.5, "pcap", ["--reference", "server"]),
    (-10.0, "pcapng", ["--client-address", "10.0.0.1"]),
  ])
  func windowedAndInMemoryAgree(shift: Double, format: String, extra: [String]) throws {
    let dir = try TemporaryDirectory()
    let (client, server) = try Self.sides(dir, connections: 120, messages: 40)
    let shifted = dir.file("shifted.\(format)")
    try #require(
      try Tools.run(["editcap", "-F", format, "-t", String(format: "%.6f", shift), server, shifted]).status
        == 0)
    let (windowed, inMemory) = try Self.mergeBothWays(dir, client, shifted, extra: extra)
    #expect((windowed["pairing_window"] as? [String: Int])?["window_ns"] == 2_000_000_000)
    #expect(inMemory["pairing_window"] == nil)
    let lower = try #require(windowed["offset_lower_ns"] as? Double)
    let upper = try #require(windowed["offset_upper_ns"] as? Double)
    #expect(lower <= shift * 1e9 && shift * 1e9 <= upper)
    // `smcpair timeline` on it says which output is missing and how to get it.
    let timeline = try Tools.run([try Tools.product("smcpair"), "timeline", dir.file("windowed")])
    #expect(timeline.status == 1)
    #expect(timeline.stderr.contains("--formats jsonl"), "\(timeline.stderr)")
    // No temporary pairing file is left behind.
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: dir.file("windowed")).sorted() == [
        "alignment.json", "merged.pcapng",
      ])
  }

  /// Every output made from the windowed walk's notes says what pairing in memory says: the
  /// same timeline.jsonl lines (pairs with their decoded fields, findings), the same report
  /// findings, a timeline.html with every pair — and no note file left.
  @Test func everyOutputAgreesWithPairingInMemory() throws {
    let dir = try TemporaryDirectory()
    let (client, server) = try Self.sides(dir, connections: 60, messages: 30)
    // The server's view with one CDC record lost and one arriving 30 ms late: findings. (After
    // the first cut, later frames are numbered one less.)
    let damaged = dir.file("server-damaged.pcapng")
    // CDC records the server received, by frame (decode --json: kind cdc, direction in).
    let decoded = try Tools.run([try Tools.product("smcpair"), "decode", "--json", server]).stdout
    let cdc = decoded.split(separator: "\n").compactMap { line -> Int? in
      guard line.contains(#""kind":"cdc""#), line.contains(#""direction":"in""#),
        let frame = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
      else { return nil }
      return frame["frame"] as? Int
    }
    try #require(cdc.count > 100)
    #expect(
      try Tools.run(["editcap", "-F", "pcapng", server, dir.file("cut.pcapng"), "\(cdc[40])"]).status == 0)
    #expect(
      try Tools.run([
        "editcap", "-F", "pcapng", "-S", "0", "-t", "0.03", "-r", dir.file("cut.pcapng"),
        dir.file("late.pcapng"),
        "\(cdc[80] - 1)",
      ]).status == 0)
    #expect(
      try Tools.run([
        "editcap", "-F", "pcapng", dir.file("cut.pcapng"), dir.file("rest.pcapng"), "\(cdc[80] - 1)",
      ])
      .status == 0)
    #expect(
      try Tools.run([
        "mergecap", "-F", "pcapng", "-w", damaged, dir.file("rest.pcapng"), dir.file("late.pcapng"),
      ])
      .status == 0)
    let windowed = try Self.merge(
      client, damaged, out: dir.file("windowed"), formats: "pcapng,jsonl,html,report")
    #expect((windowed["warnings"] as? [String])?.isEmpty == true, "\(windowed)")
    #expect((windowed["pairing_window"] as? [String: Int])?["window_ns"] == 2_000_000_000)
    let inMemory = try Self.merge(
      client, damaged, out: dir.file("memory"), formats: "pcapng,jsonl,html,report",
      extra: ["--pair-in-memory"])
    #expect(inMemory["pairing_window"] == nil)
    try Self.expectSame(dir, windowed: windowed, inMemory: inMemory)
    func lines(_ folder: String) throws -> [String] {
      try String(contentsOfFile: dir.file("\(folder)/timeline.jsonl"), encoding: .utf8).split(separator: "\n")
        .map(String.init)
    }
    let (a, b) = (try lines("windowed"), try lines("memory"))
    #expect(a.first == b.first, "the header: the same counts")
    #expect(Set(a) == Set(b), "the same pair and finding lines")
    #expect(a.count == b.count)
    #expect(a.contains { $0.contains(#""finding":"cdc-not-"#) }, "the lost CDC record is a finding")
    #expect(a.contains { $0.contains(#""finding":"delay-outlier""#) }, "the late record is a finding")
    #expect(
      a.contains { $0.contains(#""seqno":"#) && $0.contains(#""kind":"cdc""#) }, "pairs carry decoded fields")
    func findings(_ folder: String) throws -> Substring {
      let report = try String(contentsOfFile: dir.file("\(folder)/report.md"), encoding: .utf8)
      return report[(report.range(of: "## Findings")?.lowerBound ?? report.endIndex)...]
    }
    #expect(try findings("windowed") == findings("memory"))
    #expect(try findings("windowed").contains("delay-outlier"))
    let html = try String(contentsOfFile: dir.file("windowed/timeline.html"), encoding: .utf8)
    #expect(html.contains("\"events\":\(a.count - 1 - a.filter { $0.contains(#""finding":"#) }.count)"))
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: dir.file("windowed")).sorted() == [
        "alignment.json", "merged.pcapng", "report.md", "timeline.html", "timeline.jsonl",
      ])
  }

  /// Every CDC and data record is paired — SMC-D CDC records by their cursors even when the
  /// received copy is garbage elsewhere, data records by position — and a CDC missing on one
  /// side leaves exactly itself and the data record after it unpaired, nothing mispaired.
  @Test func cdcAndDataRecordsPairByCursorsAndPosition() throws {
    let dir = try TemporaryDirectory()
    let smcpair = try Tools.product("smcpair")
    try Self.sides(dir, connections: 12, messages: 6, size: 1000, extra: ["--received-smcd-garbage"])
    func decoded(_ file: String, _ kind: String) throws -> [String] {
      try Tools.run([smcpair, "decode", "--json", file]).stdout.split(separator: "\n").map(String.init).filter
      {
        $0.contains("\"kind\":\"\(kind)\"")
      }
    }
    let cdc = try decoded(dir.file("server.pcapng"), "cdc")
    let data = try decoded(dir.file("server.pcapng"), "data")
    #expect(cdc.contains { $0.contains("SMC-D") } || cdc.contains { $0.contains("smc-d") })
    let (both, _) = try Self.mergeBothWays(dir, dir.file("client.pcapng"), dir.file("server.pcapng"))
    let pairs = try #require(both["pairs"] as? [String: Int])
    #expect(pairs["cdc"] == cdc.count, "\(pairs), \(cdc.count) CDC records")
    #expect(pairs["data"] == data.count, "\(pairs), \(data.count) data records")
    // Delete one client->server CDC in the middle of a connection from the server's capture.
    let frames = try Tools.run([
      try Tools.require("tshark"), "-r", dir.file("server.pcapng"), "-T", "fields", "-e", "frame.number",
      "-e", "udp.srcport", "-e", "udp.length",
    ]).stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
    // SMC-R CDC records: 8 UDP header + 16 dump header + 48 body.
    let clientCDCs = frames.filter { $0.count == 3 && $0[1] != "8000" && $0[2] == "72" }.map { $0[0] }
    let victim = clientCDCs[2]
    try #require(
      try Tools.run(["editcap", dir.file("server.pcapng"), dir.file("server-lost.pcapng"), victim]).status
        == 0)
    let lossy = dir.file("lossy")
    try FileManager.default.createDirectory(atPath: lossy, withIntermediateDirectories: true)
    let lost = try Self.merge(
      dir.file("client.pcapng"), dir.file("server-lost.pcapng"), out: lossy + "/windowed", formats: "pcapng")
    let lostPairs = try #require(lost["pairs"] as? [String: Int])
    #expect(lostPairs["cdc"] == cdc.count - 1, "\(lostPairs)")
    #expect(lostPairs["data"] == data.count - 1, "\(lostPairs): the data after the lost CDC has no position")
    #expect(lost["causality_violations"] as? Int == 0)
  }

  /// The first connection's handshake is not in either capture (the captures started
  /// mid-connection), so its pairs come before any SYN names the client's address: the walk
  /// keeps both directions' hulls per address until the end and agrees with memory.
  @Test func connectionWithoutItsSYNIsDirectedLikeInMemory() throws {
    let dir = try TemporaryDirectory()
    let (client, server) = try Self.sides(dir, connections: 6, messages: 4)
    for (file, name) in [(client, "client-late.pcapng"), (server, "server-late.pcapng")] {
      // Frames 1 and 2: the first connection's SYN and SYN-ACK.
      try #require(try Tools.run(["editcap", file, dir.file(name), "1", "2"]).status == 0)
    }
    let (windowed, _) = try Self.mergeBothWays(
      dir, dir.file("client-late.pcapng"), dir.file("server-late.pcapng"))
    #expect(windowed["client_addresses"] as? [String] == ["10.0.0.1"])
  }

  /// Packets lost on one side stay unpaired in both ways of pairing, and the window holds
  /// only the packets still waiting, a small part of the capture.
  @Test func lossOnOneSideAndTheWindowStaysSmall() throws {
    let dir = try TemporaryDirectory()
    let (client, server) = try Self.sides(dir, connections: 120, messages: 40)
    let lossy = dir.file("lossy.pcapng")
    try #require(
      try Tools.run(["editcap", server, lossy] + stride(from: 7, to: 20_000, by: 97).map { "\($0)" }).status
        == 0)
    let windowed = try Self.merge(client, lossy, out: dir.file("windowed"), formats: "pcapng")
    let inMemory = try Self.merge(client, lossy, out: dir.file("memory"), formats: "pcapng,report")
    try Self.expectSame(dir, windowed: windowed, inMemory: inMemory)
    let merge = try Tools.run([
      try Tools.product("smcpair"), "merge", client, lossy, "--out", dir.file("again"), "--formats", "pcapng",
    ])
    let line = try #require(
      merge.stdout.split(separator: "\n").first { $0.hasPrefix("paired within a 2 s window") })
    let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
    // "paired within a 2 s window: at most W packets waiting; ... client C, server S"
    let (waiting, unpairedClient) = (numbers[1], numbers[2])
    let packets = try #require(windowed["client_packets"] as? Int)
    #expect(unpairedClient > 100, "the packets deleted from the server's side")
    #expect(waiting < packets / 20, "\(line) of \(packets) packets")
  }

  /// A clock step cannot be split into segments without every pair: the merge says why and
  /// pairs in memory. A step smaller than the window shows as infeasible pairs; a larger one
  /// as copies that arrive later than the window.
  @Test(arguments: [
    (0.4, "the clock steps inside the captures"), (5.0, "more than the pairing window (2.0 s) later"),
  ])
  func clockStepFallsBackToMemory(step: Double, reason: String) throws {
    let dir = try TemporaryDirectory()
    // Large enough that the step lies beyond the prefix the coarse offset comes from.
    let (client, server) = try Self.sides(dir, connections: 400, messages: 40)
    let count = try CaptureFileReader(path: server).packetCountByReading()
    let half = count / 2
    for (range, name) in [("1-\(half)", "first"), ("\(half + 1)-\(count)", "second")] {
      try #require(try Tools.run(["editcap", "-r", server, dir.file("\(name).pcapng"), range]).status == 0)
    }
    try #require(
      try Tools.run([
        "editcap", "-t", String(format: "%.6f", step), dir.file("second.pcapng"),
        dir.file("second-step.pcapng"),
      ]).status == 0)
    try #require(
      try Tools.run([
        "mergecap", "-a", "-w", dir.file("stepped.pcapng"), dir.file("first.pcapng"),
        dir.file("second-step.pcapng"),
      ]).status == 0)
    let windowed = try Self.merge(
      client, dir.file("stepped.pcapng"), out: dir.file("windowed"), formats: "pcapng")
    let warnings = try #require(windowed["warnings"] as? [String])
    #expect(warnings.contains { $0.hasPrefix("paired in memory") && $0.contains(reason) }, "\(warnings)")
    #expect((windowed["segments"] as? [Any])?.count == 2, "\(windowed)")
    #expect(windowed["causality_violations"] as? Int == 0)
  }
}

extension CaptureFileReader {
  func packetCountByReading() throws -> Int {
    var count = 0
    while try next() != nil { count += 1 }
    return count
  }
}

@Suite struct WindowedPairingParts {
  /// The hull of points added in any order gives the same fit as all the points.
  @Test(arguments: [1, 2, 3])
  func onlineHullFitsLikeAllPoints(seed: UInt64) {
    var state = seed &* 0x9E37_79B9_7F4A_7C15
    func random() -> Double {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Double(state >> 11) / Double(1 << 53)
    }
    var pairs: [PairedTimes] = []
    let offset = 3_000_000.0
    for i in 0..<5000 {
      let client = Int64(1_700_000_000_000_000_000) + Int64(i) * 200_000 + Int64(random() * 50_000)
      let toServer = random() < 0.5
      let delay = 30_000 + random() * random() * 400_000
      let server = client + Int64(offset + 20e-6 * Double(i) * 200_000 + (toServer ? delay : -delay))
      pairs.append(
        PairedTimes(clientToServer: toServer, clientNanoseconds: client, serverNanoseconds: server))
    }
    var up = OnlineHull(sign: 1)
    var down = OnlineHull(sign: -1)
    var shuffled = pairs
    for i in shuffled.indices.reversed() { shuffled.swapAt(i, Int(random() * Double(i + 1))) }
    for pair in shuffled { if pair.clientToServer { up.add(pair) } else { down.add(pair) } }
    let reference = pairs.map(\.clientNanoseconds).min()!
    let all = ClockFitter.fit(pairs, reference: reference).model
    let hull = ClockFitter.fit(up.vertices + down.vertices, reference: reference).model
    #expect(up.vertices.count + down.vertices.count < 200, "the hulls stay small")
    #expect(abs(all.offsetNanoseconds - hull.offsetNanoseconds) < 0.01)
    #expect(abs(all.offsetLower - hull.offsetLower) < 0.01 && abs(all.offsetUpper - hull.offsetUpper) < 0.01)
    #expect(abs(all.skewPPM - hull.skewPPM) < 1e-9)
  }

  /// The waiting table keeps FIFO chains per key and deletes emptied keys, against a
  /// dictionary of arrays, over many random operations.
  @Test func fingerprintChainsMatchAReference() {
    var table = FingerprintChains()
    var reference: [UInt64: [Int]] = [:]
    var next: [Int: Int] = [:]
    var state: UInt64 = 42
    func random(_ n: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int(state >> 33) % n
    }
    for seq in 0..<60_000 {
      // Keys collide in their low bits on purpose: long probe runs exercise deletion.
      let key = UInt64(random(3000)) << 40 | UInt64(random(4))
      if random(2) == 0 {
        let previous = table.append(key, seq)
        #expect(previous == reference[key]?.last, "the previous last of the chain")
        if let previous { next[previous] = seq }
        reference[key, default: []].append(seq)
      } else {
        let expected = reference[key]?.first
        var got: Int?
        if let slot = table.slot(of: key) {
          got = table.first(at: slot)
          table.replaceFirst(at: slot, with: next[got!] ?? -1)
        }
        #expect(got == expected)
        if expected != nil {
          reference[key]!.removeFirst()
          if reference[key]!.isEmpty { reference[key] = nil }
        }
      }
    }
    for (key, chain) in reference {
      #expect(table.slot(of: key).map { table.first(at: $0) } == chain.first)
    }
  }
}
