import Alignment
import Foundation
import MergePipeline
import SSHTransport
import Testing

@testable import Orchestration

/// session.json as records: today's files and the first release's load, round trips keep
/// every key, and a damaged record says which file and field.
@Suite struct SessionRecords {
  /// The hosts of a snapshot, as `SessionRecord.hostsSnapshot` writes them.
  static let hostsYAML = """
    hosts:
      h1:
        address: 10.0.0.1
      h2:
        address: 10.0.0.2

    """

  static func side(_ host: String, address: String, extra: String) -> String {
    """
    {
      "address" : "\(address)", "agent" : "/usr/local/bin/smcpair-agent", "agent_root" : null,
      "become" : "none", "bytes" : 5120, "drops" : 0, "files" : ["\(host == "h1" ? "client" : "server").pcapng"],
      "host" : "\(host)", "interfaces" : ["eth0"], "log" : ["2026-11-26T19:10:51Z connecting"],
      "packets" : 40, "port" : 22,
      "preflight" : {"agent" : "current", "auth" : "publickey", "free_disk" : "9 GiB", "host_key" : "recorded",
                     "kernel" : "6.1.0", "smc_dump" : "smc-dummy0001", "sudo" : "root"},
      "remote_files" : [{"path" : "/var/lib/smcpair/agent/s/capture.pcapng", "sha256" : "ab12", "size" : 5120}],
      "remote_session" : "20261126T191051Z-pair1-1a2b-\(host)", "state" : "finalized", "user" : "root"
      \(extra)
    }
    """
  }

  /// session.json as smcpair wrote it before this change (JSONSerialization, every key).
  static let current = """
    {
      "alignment" : {"causality_violations" : 0, "offset_lower_ns" : -25025, "offset_ns" : 0,
                     "offset_upper_ns" : null, "skew_ppm" : 0.5, "verdict" : "one-sided"},
      "clock_probe" : {"half_width_ns" : 120000.5, "offset_ns" : -3000.25},
      "command" : ["smcpair", "capture", "-i", "lab.yaml", "--pair", "pair1"],
      "created" : "2026-11-26T19:10:51Z",
      "dump_filter" : "udp port 7000",
      "filter" : "tcp port 7000",
      "findings" : {"declined" : 1},
      "id" : "20261126T191051Z-pair1",
      "inventory" : {"hosts" : \(quoted(hostsYAML)), "path" : "/tmp/lab/inventory.yaml"},
      "pair" : "pair1",
      "sides" : {
        "client" : \(side("h1", address: "10.0.0.1", extra: #", "data_address" : null, "remote_copy" : "removed", "agent_version" : "7", "started_ns" : 10, "stopped_ns" : 20, "stop_reason" : "stopped""#)),
        "server" : \(side("h2", address: "10.0.0.2", extra: #", "data_address" : "10.1.0.2", "remote_copy" : null, "ended_early" : "lost", "failure" : "h2: pulling: gone""#))
      },
      "smcpair_version" : "0.9.0",
      "state" : "partial",
      "stop" : {"duration_s" : 30},
      "stop_reason" : "workload ended (exit status 0)",
      "updated" : "2026-11-26T19:11:30Z",
      "workload" : {
        "client" : {"command" : "true", "finished" : true, "log" : "client-cmd.log", "outcome" : "exit status 0",
                    "pid" : 4242, "seconds" : 1.5, "tag" : "20261126T191051Z-pair1-client"},
        "server" : {"command" : "sleep 60", "finished" : false, "log" : "server-cmd.log", "outcome" : "running",
                    "pid" : 4243, "seconds" : null, "tag" : "20261126T191051Z-pair1-server"}
      }
    }
    """

  /// session.json of the first release: the inventory's text (null here), no dump filter, no
  /// data address, no remote copy, workloads without pid, tag or finished.
  static let firstRelease = """
    {
      "command" : ["smcpair", "capture"], "created" : "2026-11-20T08:00:00Z", "filter" : "",
      "id" : "20261120T080000Z-pair1",
      "inventory" : {"path" : "/tmp/lab/inventory.yaml", "text" : \(quoted(hostsYAML))},
      "pair" : "pair1",
      "sides" : {
        "client" : \(side("h1", address: "10.0.0.1", extra: "")),
        "server" : \(side("h2", address: "10.0.0.2", extra: ""))
      },
      "smcpair_version" : "0.1.0", "state" : "capturing", "stop" : {"duration_s" : 30},
      "updated" : "2026-11-20T08:00:05Z",
      "workload" : {"server" : {"command" : "sleep 9", "log" : "server-cmd.log", "outcome" : "running", "seconds" : null}}
    }
    """

  static func quoted(_ text: String) -> String {
    String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
  }

  static func decode(_ text: String, path: String = "session.json") throws -> SessionRecord {
    try RecordCoding.decode(SessionRecord.self, from: Data(text.utf8), path: path)
  }

  /// Every key path of a JSON value (objects only), to compare what two writers wrote.
  static func keyPaths(_ text: String) throws -> Set<String> {
    func walk(_ value: Any, _ prefix: String, into paths: inout Set<String>) {
      guard let object = value as? [String: Any] else { return }
      for (key, child) in object {
        paths.insert(prefix + key)
        walk(child, prefix + key + ".", into: &paths)
      }
    }
    var paths: Set<String> = []
    walk(try JSONSerialization.jsonObject(with: Data(text.utf8)), "", into: &paths)
    return paths
  }

  @Test func todaysRecordLoadsWithItsValues() throws {
    let record = try Self.decode(Self.current)
    #expect(record.state == .partial)
    #expect(record.inventory.hosts == Self.hostsYAML && record.inventory.text == nil)
    #expect(record.sides.client.remoteCopy == "removed" && record.sides.server.remoteCopy == nil)
    #expect(record.sides[.server].dataAddress == "10.1.0.2" && record.sides[.client].dataAddress == nil)
    #expect(
      record.sides.client.remoteFiles == [
        .init(path: "/var/lib/smcpair/agent/s/capture.pcapng", size: 5120, sha256: "ab12")
      ])
    #expect(record.workload?[.client]?.outcome == .exited(0))
    #expect(record.workload?[.server]?.outcome == .running && record.workload?[.server]?.pid == 4243)
    #expect(record.alignment?.verdict == .oneSided && record.alignment?.offsetUpperNanoseconds == nil)
    #expect(record.alignment?.offsetLowerNanoseconds == -25025)
    #expect(record.clockProbe?.offsetNanoseconds == -3000.25)
    #expect(record.stop.durationSeconds == 30 && record.stop.packets == nil)
    #expect(record.sides.server.failure == "h2: pulling: gone")
  }

  /// Written again, a record has the same keys as before (nulls included) and reads back equal.
  @Test func roundTripKeepsEveryKeyAndValue() throws {
    let record = try Self.decode(Self.current)
    let written = RecordCoding.text(record, pretty: true)
    #expect(try Self.decode(written) == record)
    #expect(try Self.keyPaths(written) == Self.keyPaths(Self.current))
    // Unbounded stays an explicit null, as readers of the old files expect.
    #expect(written.contains(#""offset_upper_ns" : null"#), "\(written)")
    #expect(written.contains(#""agent_root" : null"#))
  }

  @Test func firstReleaseRecordLoads() throws {
    let record = try Self.decode(Self.firstRelease)
    #expect(record.state == .capturing && record.dumpFilter == nil)
    #expect(record.inventory.hosts == nil && record.inventory.text == Self.hostsYAML)
    #expect(record.sides.client.remoteCopy == nil && record.sides.client.dataAddress == nil)
    let workload = try #require(record.workload?[.server])
    #expect(workload.pid == nil && workload.tag == nil && workload.finished == nil)
  }

  /// `sessions resume` takes up a folder written by the first release: hosts from the
  /// inventory text, the agents' session names, the creation time.
  @Test func resumeReadsAFirstReleaseFolder() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("records-\(getpid())").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try Self.firstRelease.write(toFile: folder + "/session.json", atomically: true, encoding: .utf8)
    let run = try CaptureRun(
      resuming: folder, ssh: SSHOptions(), knownHostsOverride: nil,
      options: CaptureOptions(agent: try LocalAgent(path: "/bin/true")), events: CaptureEvents(line: { _ in })
    )
    let pair = try #require(run.pairs.first)
    #expect(pair.name == "pair1" && pair.client.name == "h1" && pair.server.name == "h2")
    #expect(pair.server.remoteSession == "20261126T191051Z-pair1-1a2b-h2")
    #expect(pair.created == ISO8601DateFormatter().date(from: "2026-11-20T08:00:00Z"))
    #expect(pair.orphanWorkloads.isEmpty, "no pid recorded, nothing to end")
    #expect(pair.recordedWorkloads[.server]?.command == "sleep 9")
  }

  @Test func aDamagedRecordNamesItsFileAndField() throws {
    let wrongType = Self.current.replacingOccurrences(of: #""host" : "h2""#, with: #""host" : 2"#)
    #expect {
      try Self.decode(wrongType, path: "/s/session.json")
    } throws: { error in
      let error = try #require(error as? RecordError)
      return error.path == "/s/session.json" && error.field == "sides.server.host"
        && error.description == "/s/session.json: field 'sides.server.host': not a string"
    }
    let unknownState = Self.current.replacingOccurrences(
      of: #""state" : "partial""#, with: #""state" : "lost""#)
    #expect {
      try Self.decode(unknownState)
    } throws: { error in
      (error as? RecordError)?.field == "state"
    }
    let missing = Self.firstRelease.replacingOccurrences(of: #""pair" : "pair1","#, with: "")
    #expect {
      try Self.decode(missing)
    } throws: { error in
      (error as? RecordError)?.description == "session.json: field 'pair': missing"
    }
    #expect {
      try Self.decode("{ not json")
    } throws: { error in
      let error = try #require(error as? RecordError)
      return error.field.isEmpty && error.problem.hasPrefix("not JSON")
    }
  }

  /// `sessions list` still lists a record it cannot read whole, with what it can.
  @Test func listShowsWhatARecordHas() throws {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("records-list-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: out) }
    for (name, text) in [("a", Self.current), ("b", #"{"pair": "p2"}"#), ("c", "not json")] {
      try FileManager.default.createDirectory(atPath: "\(out)/\(name)", withIntermediateDirectories: true)
      try text.write(toFile: "\(out)/\(name)/session.json", atomically: true, encoding: .utf8)
    }
    let list = SessionRecord.list(out)
    #expect(list.map(\.id) == ["a", "b"])
    #expect(list.first?.state == "partial" && list.first?.created == "2026-11-26T19:10:51Z")
    #expect(list.last?.pair == "p2" && list.last?.state == "?")
  }
}

@Suite struct PairStates {
  /// The steps a capture takes, a failed start, and a resume: each allowed.
  @Test func theCapturesStepsAreAllowed() {
    let paths: [[PairState]] = [
      [.preflight, .arming, .capturing, .stopping, .pulling, .complete],
      [.preflight, .arming, .capturing, .stopping, .pulling, .partial],
      [.preflight, .failed], [.preflight, .arming, .failed],
      [.preflight, .stopping, .pulling, .failed],
    ]
    for path in paths {
      for (from, to) in zip(path, path.dropFirst()) { #expect(from.canMove(to: to), "\(from) -> \(to)") }
    }
  }

  @Test func finalStatesGoNowhereAndNoStepIsSkipped() {
    for state in PairState.allCases where state.isFinal {
      #expect(PairState.allCases.allSatisfy { !state.canMove(to: $0) }, "\(state)")
    }
    #expect(!PairState.capturing.canMove(to: .complete))
    #expect(!PairState.arming.canMove(to: .stopping))
    #expect(!PairState.stopping.canMove(to: .capturing))
    #expect(
      PairState.allCases.map(\.rawValue) == [
        "preflight", "arming", "capturing", "stopping", "pulling", "complete", "partial", "failed",
      ])
  }
}

@Suite struct WorkloadOutcomes {
  @Test(arguments: [
    (WorkloadOutcome.running, "running"), (.exited(0), "exit status 0"), (.exited(-1), "exit status -1"),
    (.signalled("TERM"), "ended by signal TERM"),
    (.failed("connecting: refused"), "failed: connecting: refused"),
  ])
  func textRoundTrips(outcome: WorkloadOutcome, text: String) throws {
    #expect(outcome.description == text)
    #expect(WorkloadOutcome(recorded: text) == outcome)
    let encoded = try JSONEncoder().encode([outcome])
    #expect(String(decoding: encoded, as: UTF8.self) == "[\(SessionRecords.quoted(text))]")
    #expect(try JSONDecoder().decode([WorkloadOutcome].self, from: encoded) == [outcome])
  }

  @Test func onlyExitStatusZeroSucceeded() {
    #expect(WorkloadOutcome.exited(0).succeeded)
    #expect(
      ![WorkloadOutcome.running, .exited(1), .signalled("KILL"), .failed("x")].contains { $0.succeeded })
    #expect(WorkloadOutcome(recorded: "exit status x") == nil && WorkloadOutcome(recorded: "done") == nil)
  }
}

@Suite struct Sides {
  @Test func otherAndKeys() throws {
    #expect(Side.allCases == [.client, .server])
    #expect(Side.client.other == .server && Side.server.other == .client)
    // Keys of a JSON object, not a list of alternating keys and values.
    let text = String(decoding: try RecordCoding.encoder().encode([Side.server: 1]), as: UTF8.self)
    #expect(text == #"{"server":1}"#)
  }

  @Test func perSideIsAddressedBySideAndWrittenByName() throws {
    var counts = PerSide(repeating: [Int]())
    counts[.server].append(7)
    counts[.client] += [1, 2]
    #expect(counts.client == [1, 2] && counts.server == [7])
    #expect(PerSide.each { $0.rawValue } == PerSide(client: "client", server: "server"))
    #expect(counts.map(\.count) == PerSide(client: 2, server: 1))
    let text = String(decoding: try RecordCoding.encoder().encode(counts), as: UTF8.self)
    #expect(text == #"{"client":[1,2],"server":[7]}"#)
    #expect(try RecordCoding.decode(PerSide<[Int]>.self, from: Data(text.utf8), path: "t.json") == counts)
  }
}
