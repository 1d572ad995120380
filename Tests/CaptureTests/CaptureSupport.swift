import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A lab plus what the capture tests need around it: the inventory, the agents' folder,
/// a session folder, and `smcpair capture` runs.
final class CaptureLab: @unchecked Sendable {
  let lab: TestLab
  let work: TemporaryDirectory
  let smcpair: String

  init(hosts: Int, tag: String) throws {
    lab = try TestLab(hosts: hosts, tag: tag)
    work = try TemporaryDirectory("smcpair-capture")
    smcpair = lab.smcpair
  }

  var inventory: String { lab.status.inventory }
  var labFolder: String { (inventory as NSString).deletingLastPathComponent }
  var agentRoot: String { labFolder + "/agent" }
  var sessions: String { work.file("sessions") }

  /// The SSH (management) address of lab host `index`: the inventory's `address`.
  func address(_ index: Int) -> String { lab.status.hosts[index].address }
  /// The data address of lab host `index` (data0): what workloads use, never the SSH address.
  func dataAddress(_ index: Int) -> String { lab.status.hosts[index].trafficAddress }

  /// The emulator as workload: server on the server host, client towards `{server}`.
  func emulatorWorkload(scenario: String, port: Int = 7000, extra: [String] = []) -> [String] {
    [
      "--server-cmd", "\(smcpair) lab peer server --port \(port)",
      "--client-cmd",
      "\(smcpair) lab peer client --connect {server}:\(port) --scenario \(scenario) "
        + extra.joined(separator: " "),
    ]
  }

  /// A capture refused in the preflight: exit 1 saying `reason`, nothing armed, no agent left.
  func expectRefusedInPreflight(
    _ result: ProcessResult, saying reason: String, sourceLocation: SourceLocation = #_sourceLocation
  ) {
    #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)", sourceLocation: sourceLocation)
    #expect(result.stdout.contains(reason), "\(result.stdout)", sourceLocation: sourceLocation)
    #expect(!result.stdout.contains("capturing on both sides"), sourceLocation: sourceLocation)
    #expect(agentsGone().isEmpty, "agents left: \(agentProcesses())", sourceLocation: sourceLocation)
  }

  /// The lab's inventory changed by `edit`, written as `name` in the work folder; its path.
  func editedInventory(_ name: String, _ edit: (String) -> String) throws -> String {
    let path = work.file(name)
    try edit(try String(contentsOfFile: inventory, encoding: .utf8)).write(
      toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @discardableResult
  func capture(_ arguments: [String], inventory: String? = nil) throws -> ProcessResult {
    try Tools.run(
      [smcpair, "capture", "-i", inventory ?? self.inventory, "--out", sessions, "--connect-timeout", "5"]
        + arguments)
  }

  /// `smcpair capture` in the background (so that tests can signal it), once it says
  /// "capturing on both sides"; its output is in `work/run.out` and `.err`.
  func startCapture(_ arguments: [String]) throws -> BackgroundProcess {
    let out = work.file("run")
    let process = try BackgroundProcess(
      [smcpair, "capture", "-i", inventory, "--out", sessions] + arguments, stdout: out + ".out",
      stderr: out + ".err")
    #expect(CaptureLab.waitFor("capturing on both sides", in: out + ".out", seconds: 30))
    return process
  }

  var runOutput: String { (try? String(contentsOfFile: work.file("run.out"), encoding: .utf8)) ?? "" }
  var runErrors: String { (try? String(contentsOfFile: work.file("run.err"), encoding: .utf8)) ?? "" }

  /// UDP datagrams from h1 to h2's data address for half a second (packets on both captured
  /// NICs, none pairable).
  func blast() throws {
    let result = try lab.run(
      0, [smcpair, "lab", "blast", "--to", "\(dataAddress(1)):9999", "--rate", "50", "--seconds", "0.5"])
    #expect(result.status == 0, "\(result.stderr)")
  }

  /// The JSON summary (`--json`) of a run.
  func summary(_ result: ProcessResult) throws -> [String: Any] {
    let line = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
    guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
      throw NamespaceError(message: "no JSON summary in: \(result.stdout)\n\(result.stderr)")
    }
    return object
  }

  func sessionFolders() -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: sessions)) ?? []).sorted().map {
      "\(sessions)/\($0)"
    }
  }

  func record(_ folder: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/session.json"))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
  }

  /// Running agents that use this lab's agent folder (none may be left behind).
  func agentProcesses() -> [String] {
    var found: [String] = []
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(entry) != nil
    {
      guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
        let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8), !stat.contains(") Z")
      else { continue }
      let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
      if line.contains("smcpair-agent") && line.contains(agentRoot) { found.append("\(entry): \(line)") }
    }
    return found
  }

  /// Waits until no agent of this lab runs (they exit after finalizing); returns what is left.
  func agentsGone(within seconds: Double = 10) -> [String] {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if agentProcesses().isEmpty { return [] }
      usleep(100_000)
    }
    return agentProcesses()
  }

  /// The pid of the agent running in lab host `index` (by its network namespace).
  func agentPID(host index: Int) throws -> Int32? {
    for line in agentProcesses() {
      guard let pid = Int32(line.split(separator: ":")[0]) else { continue }
      let identified = try Tools.run(["ip", "netns", "identify", "\(pid)"])
      if identified.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        == lab.status.hosts[index].namespace
      {
        return pid
      }
    }
    return nil
  }

  /// Waits until `path` contains `text`.
  static func waitFor(_ text: String, in path: String, seconds: Double) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if let content = try? String(contentsOfFile: path, encoding: .utf8), content.contains(text) {
        return true
      }
      usleep(100_000)
    }
    return false
  }

  static func mode(_ path: String) -> Int {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_mode & 0o777) : -1
  }

  static func sha256(_ path: String) throws -> String {
    let result = try Tools.run(["sha256sum", path])
    return String(result.stdout.prefix(64))
  }
}

extension Dictionary where Key == String, Value == Any {
  func object(_ key: String) -> [String: Any] { self[key] as? [String: Any] ?? [:] }
  func number(_ key: String) -> Double? { (self[key] as? NSNumber)?.doubleValue }
}
