import Foundation
import TestSupport
import Testing

/// `smcpair timeline` and timeline.jsonl on a merge of lab-like synthetic captures: every arrow
/// says what its message is, and the pair lines carry exactly `decode --json`'s fields.
@Suite(.serialized) struct TimelineLabels {
  /// Six conversations (SMC-R v1/v2, SMC-D v1/v2, one declined, one fallback) merged into `out`.
  static func merged(_ dir: TemporaryDirectory) throws -> String {
    let (client, server) = try WindowedMerge.sides(dir, connections: 6, messages: 2, size: 1000)
    let merge = try Tools.run([
      try Tools.product("smcpair"), "merge", client, server, "--out", dir.file("out"), "--client-name", "h1",
      "--server-name", "h2",
    ])
    try #require(merge.status == 0, "\(merge.stderr)")
    return dir.file("out")
  }

  static func timeline(_ arguments: [String], columns: Int = 200) throws -> ProcessResult {
    try Tools.run(
      [try Tools.product("smcpair"), "timeline", "--no-pager"] + arguments,
      environment: ["COLUMNS": "\(columns)"])
  }

  static func objects(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map {
      try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "\($0)")
    }
  }

  @Test func theLadderLabelsEveryArrowLikeWireshark() throws {
    let dir = try TemporaryDirectory()
    let out = try Self.merged(dir)
    let result = try Self.timeline([out])
    #expect(result.status == 0, "\(result.stderr)")
    let rows = result.stdout.split(separator: "\n").map(String.init)
    #expect(rows.contains("  #1  h1 10.0.0.1:32768  <->  h2 10.0.0.2:8000"), "\(rows.prefix(8))")
    // The first connection, SMC-R v1, row by row: direction of the arrow and its label.
    let first = rows.filter { $0.contains(" #1   |") }
    let expected: [(Bool, String)] = [
      (true, "SYN Seq=0 Len=0"), (false, "SYN, ACK Seq=0 Ack=1 Len=0"), (true, "ACK Seq=1 Ack=1 Len=0"),
      (true, "CLC Proposal v1 R"), (false, "CLC Accept v1 R"), (true, "CLC Confirm v1 R"),
      (false, "ACK Seq=69 Ack=121 Len=0"), (true, "data 1000 B 0:0..0:1000"),
      (true, "CDC #1 prod 0:1000 cons 0:0"), (false, "CDC #1 prod 0:0 cons 0:1000"),
      (true, "data 1000 B 0:1000..0:2000"), (true, "CDC #2 prod 0:2000 cons 0:0 [peer-done-writing]"),
      (false, "CDC #2 prod 0:0 cons 0:2000 [peer-done-writing, peer-closed]"),
      (true, "FIN, ACK Seq=121 Ack=69 Len=0"), (false, "FIN, ACK Seq=69 Ack=122 Len=0"),
      (true, "ACK Seq=122 Ack=70 Len=0"),
    ]
    #expect(first.count == expected.count, "\(first.joined(separator: "\n"))")
    for (row, (fromClient, label)) in zip(first, expected) {
      #expect(row.contains(fromClient ? "|- \(label) -" : "- \(label) -|"), "\(row) should carry '\(label)'")
      #expect(row.hasSuffix("25.0 us"), "\(row)")
      #expect(row.hasPrefix("   +0.000"), "time from the first event: \(row)")
    }
    #expect(rows.contains { $0.contains("#2 ") && $0.contains("CLC Proposal v2 R") })
    #expect(
      rows.contains { $0.contains("#3 ") && $0.contains("|- CDC prod 0:1000 cons 0:0 -") }, "SMC-D: no seqno")
    #expect(
      rows.contains { $0.contains("- CLC Decline v1 0x03030002 (NOSMCRDEV: no SMC-R device found) -|") })
    #expect(rows.contains { $0.contains("!! declined (client) 10.0.0.1:32772 -> 10.0.0.2:8000") })
    // A narrow terminal cuts labels, it does not wrap rows.
    let narrow = try Self.timeline([out], columns: 70)
    let narrowRows = narrow.stdout.split(separator: "\n").filter { $0.contains("|") }
    #expect(narrowRows.allSatisfy { $0.count <= 70 }, "\(narrowRows.first ?? "")")
    #expect(narrowRows.contains { $0.contains("CDC #2 prod 0:0 cons 0:2000 [pe…") })
    // --absolute: UTC wall time (the synthetic captures start at 16:00:00 UTC).
    let absolute = try Self.timeline([out, "--absolute"]).stdout
    #expect(absolute.contains("16:00:00.000000000 #1   |- SYN Seq=0 Len=0 -"), "\(absolute.prefix(600))")
  }

  /// Frame by frame, every field a pair line shares with `decode --json` of the client capture
  /// has the same value, and every decoded field of the event is on the pair line.
  @Test func pairLinesCarryDecodeJSONFields() throws {
    let dir = try TemporaryDirectory()
    let out = try Self.merged(dir)
    let decode = try Tools.run([try Tools.product("smcpair"), "decode", "--json", dir.file("client.pcapng")])
    #expect(decode.status == 0, "\(decode.stderr)")
    let events = Dictionary(grouping: try Self.objects(decode.stdout)) { $0["frame"] as? Int ?? -1 }
    let lines = try Self.objects(try String(contentsOfFile: out + "/timeline.jsonl", encoding: .utf8))
    let pairs = lines.filter { $0["client_frame"] != nil }
    #expect(pairs.count > 80)
    let pairingFields: Set<String> = [
      "client_frame", "server_frame", "send_ns", "receive_ns", "delay_ns", "delay_uncertainty_ns",
      "direction",
      "src", "dst", "kind",
    ]
    let eventOnly: Set<String> = ["file", "frame", "time_ns", "interface", "direction"]
    var compared = 0
    var kinds: Set<String> = []
    for pair in pairs {
      let frame = try #require(pair["client_frame"] as? Int)
      let candidates = try #require(events[frame], "client frame \(frame) has no decode event")
      let kind = pair["kind"] as? String
      let event = candidates.first { $0["kind"] as? String == kind } ?? candidates[0]
      #expect(event["src"] as? String == pair["src"] as? String)
      #expect(event["dst"] as? String == pair["dst"] as? String)
      for (key, value) in event where !eventOnly.contains(key) && !pairingFields.contains(key) {
        if value is NSNull { continue }
        let written = try #require(pair[key], "frame \(frame): '\(key)' missing from \(pair)")
        // Both parsed by JSONSerialization: equal JSON values print alike.
        #expect("\(value)" == "\(written)", "frame \(frame) \(key): decode \(value), timeline \(written)")
        compared += 1
      }
      for key in pair.keys where !pairingFields.contains(key) {
        #expect(event[key] != nil, "frame \(frame): '\(key)' is not a decode --json field")
      }
      if let kind { kinds.insert(kind) }
    }
    #expect(kinds == ["tcp", "clc", "cdc", "data"])
    #expect(compared > pairs.count * 3)
    let seqRel = pairs.compactMap { $0["seq_rel"] as? Int }
    #expect(seqRel.contains(0) && seqRel.contains(1))
    #expect(
      pairs.contains { $0["range_end_count"] as? Int == 2000 && $0["range_start_count"] as? Int == 1000 })
  }

  /// A timeline.jsonl written before pair lines carried decode fields still draws: kind and ports.
  @Test func anOlderFileDrawsKindAndPorts() throws {
    let dir = try TemporaryDirectory()
    let file = dir.file("old.jsonl")
    try Data(
      (#"{"findings":0,"format":"smcpair-timeline","pairs":1,"version":1}"# + "\n"
        + #"{"client_frame":1,"delay_ns":25000,"direction":"client->server","dst":"10.0.0.2:8000","kind":"tcp","receive_ns":25000,"send_ns":0,"server_frame":1,"src":"10.0.0.1:32768"}"#
        + "\n").utf8
    ).write(to: URL(fileURLWithPath: file))
    let result = try Self.timeline([file])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.contains("|- tcp 32768>8000 -"), "\(result.stdout)")
  }

  @Test func folderOrFileAndLayersInAnyCase() throws {
    let dir = try TemporaryDirectory()
    let out = try Self.merged(dir)
    let folder = try Self.timeline([out])
    let file = try Self.timeline([out + "/timeline.jsonl"])
    #expect(folder.status == 0 && file.status == 0, "\(file.stderr)")
    #expect(folder.stdout == file.stdout)
    #expect(folder.stdout.contains("h2"), "host names from the folder's alignment.json")
    let upper = try Self.timeline([out, "--layer", "CDC"])
    let lower = try Self.timeline([out, "--layer", "cdc"])
    #expect(upper.status == 0 && upper.stdout == lower.stdout)
    let arrows = upper.stdout.split(separator: "\n").filter { $0.contains("|") }
    #expect(!arrows.isEmpty && arrows.allSatisfy { $0.contains(" CDC ") })
    let two = try Self.timeline([out, "--layer", "Clc,cdc"]).stdout
    #expect(two.contains("CLC Proposal") && two.contains("CDC #1"))
    #expect(!two.split(separator: "\n").contains { $0.contains("|") && $0.contains("SYN") }, "no TCP arrows")
    // Findings follow the filters: the decline is CLC's, on port 32772.
    let declined = "!! declined (client) 10.0.0.1:32772"
    #expect(try Self.timeline([out, "--layer", "clc", "--connection", ":32772"]).stdout.contains(declined))
    #expect(!(try Self.timeline([out, "--layer", "tcp"]).stdout.contains(declined)))
    #expect(!(try Self.timeline([out, "--connection", ":32768"]).stdout.contains(declined)))
    let bad = try Self.timeline([out, "--layer", "cdc,llama"])
    #expect(bad.status == 64 && bad.stderr.contains("--layer takes tcp, clc, cdc or data"), "\(bad.stderr)")
  }
}
