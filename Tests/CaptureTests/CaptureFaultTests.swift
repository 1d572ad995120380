import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The fault matrix of docs/reliability.md: hosts that cannot be reached, sshd gone, the
/// network between the workstation and one host cut.
@Suite(.serialized) struct CaptureFaults {
  func labHost(_ env: CaptureLab, _ index: Int, _ key: String) throws -> Any {
    let data = try Data(contentsOf: URL(fileURLWithPath: env.labFolder + "/lab.json"))
    let state = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let hosts = try #require(state["hosts"] as? [[String: Any]])
    return try #require(hosts[index][key])
  }

  /// An address in the lab's subnet that nobody has: connect times out (no route
  /// refusal), the other host's agent is closed, exit 1.
  @Test func unreachableHostTimesOutAndNothingIsLeftRunning() throws {
    let env = try CaptureLab(hosts: 2, tag: "cm")
    let ghost = env.address(1).split(separator: ".").dropLast().joined(separator: ".") + ".99"
    let inventory = try env.editedInventory("ghost.yaml") {
      $0.replacingOccurrences(of: "\"\(env.address(1))\"", with: "\"\(ghost)\"")
    }
    let result = try Tools.run([
      env.smcpair, "capture", "-i", inventory, "--pair", "pair1", "--duration", "5s", "--out", env.sessions,
      "--connect-timeout", "2",
    ])
    env.expectRefusedInPreflight(result, saying: "h2: connecting:")
  }

  /// Every sshd process of the server host (the listener and the session's) killed while
  /// capturing: the client's capture is complete and pulled, the server side is marked,
  /// exit 2; the server's agent finishes its capture by itself at its limit, on the host.
  @Test func sshdKilledMidCaptureKeepsBothCaptures() throws {
    let env = try CaptureLab(hosts: 2, tag: "cn")
    let process = try env.startCapture(["--pair", "pair1", "--duration", "6s"])
    try env.blast()
    let namespace = env.lab.status.hosts[1].namespace
    let pids = try Tools.run(["ip", "netns", "pids", namespace]).stdout.split(separator: "\n").compactMap {
      Int32($0)
    }
    var killed = 0
    for pid in pids {
      let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
      if comm.hasPrefix("sshd") {
        kill(pid, SIGKILL)
        killed += 1
      }
    }
    #expect(killed >= 2, "the listener and the session's sshd")
    let status = process.wait(seconds: 60)
    #expect(status == 2, "\(env.runOutput)\n\(env.runErrors)")
    let folder = try #require(env.sessionFolders().first)
    let record = try env.record(folder)
    #expect(record["state"] as? String == "partial")
    #expect(FileManager.default.fileExists(atPath: folder + "/client.pcapng"))
    let server = record.object("sides").object("server")
    #expect(server["failure"] != nil || server["ended_early"] != nil, "\(server)")
    // The server's agent lost its control connection, captured on to its limit and finalized.
    let remote = try #require(server["remote_session"] as? String)
    let state = env.agentRoot + "/sessions/\(remote)/state.json"
    #expect(CaptureLab.waitFor("\"finalized\"", in: state, seconds: 30), "\(state)")
    #expect(FileManager.default.fileExists(atPath: env.agentRoot + "/sessions/\(remote)/capture-0001.pcapng"))
    #expect(env.agentsGone(within: 15).isEmpty, "agents left: \(env.agentProcesses())")
  }

  /// The agent's folder is on a 32 MiB file system: the preflight refuses (64 MiB is the
  /// least a capture starts with), names the folder, and leaves no agent running - the check
  /// and the agent's start are one exec, so the started agent must be closed.
  @Test func tooLittleFreeDiskIsRefusedAndNoAgentIsLeft() throws {
    let env = try CaptureLab(hosts: 2, tag: "cd")
    let small = env.work.file("small")
    try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
    // Mounted where the host's sshd (and so the agent) sees it: its own mount namespace.
    let sshd = try #require(try labHost(env, 0, "sshd_pid") as? Int)
    let enter = ["nsenter", "--mount=/proc/\(sshd)/ns/mnt", "--"]
    try #require(
      try Tools.run(enter + ["mount", "-t", "tmpfs", "-o", "size=32m", "smcpair-test", small]).status == 0)
    defer { _ = try? Tools.run(enter + ["umount", small]) }
    let inventory = try env.editedInventory("small.yaml") {
      $0.replacingOccurrences(of: "agent_root: \"\(env.agentRoot)\"", with: "agent_root: \"\(small)/agent\"")
    }
    #expect(try String(contentsOfFile: inventory, encoding: .utf8).contains(small))
    let result = try env.capture(["--pair", "pair1", "--duration", "2s"], inventory: inventory)
    env.expectRefusedInPreflight(result, saying: "MiB free where the agent writes (\(small)/agent)")
  }

  /// session.json cannot be replaced mid-capture (its temporary name is taken by a folder):
  /// the capture goes on to the end, pulls and merges both sides, and says so once.
  @Test func sessionRecordThatCannotBeWrittenIsToldOnce() throws {
    let env = try CaptureLab(hosts: 2, tag: "cw")
    let process = try env.startCapture(["--pair", "pair1", "--duration", "3s"])
    let folder = try #require(env.sessionFolders().first)
    try FileManager.default.createDirectory(
      atPath: folder + "/session.json.tmp", withIntermediateDirectories: false)
    try env.blast()
    let status = process.wait(seconds: 60)
    #expect(status == 0, "\(env.runOutput)\n\(env.runErrors)")
    let warnings = (env.runOutput + env.runErrors).split(separator: "\n").filter {
      $0.contains("warning: pair1: cannot write") && $0.contains("session.json.tmp")
    }
    #expect(warnings.count == 1, "\(env.runOutput)\n\(env.runErrors)")
    for file in ["client.pcapng", "server.pcapng", "alignment.json", "merged.pcapng"] {
      #expect(FileManager.default.fileExists(atPath: folder + "/" + file), "\(file)")
    }
    #expect(env.agentsGone().isEmpty, "agents left: \(env.agentProcesses())")
  }

  /// The link between the workstation and the server host goes down while capturing: the
  /// server is lost (exit 2, client kept); when the link is back, `sessions resume` stops
  /// the server's agent, pulls its capture and merges.
  @Test func networkCutToOneHostThenResumeRecovers() throws {
    let env = try CaptureLab(hosts: 2, tag: "co")
    let link = try #require(try labHost(env, 1, "root_link") as? String)
    let process = try env.startCapture(["--pair", "pair1", "--duration", "120s", "--connect-timeout", "2"])
    try env.blast()
    #expect(try Tools.run(["ip", "link", "set", link, "down"]).status == 0)
    let status = process.wait(seconds: 90)
    #expect(try Tools.run(["ip", "link", "set", link, "up"]).status == 0)
    #expect(status == 2, "\(env.runOutput)\n\(env.runErrors)")
    #expect(
      env.runOutput.contains("lost while capturing") || env.runOutput.contains("ENDED EARLY"),
      "\(env.runOutput)")
    let folder = try #require(env.sessionFolders().first)
    #expect(try env.record(folder)["state"] as? String == "partial")
    #expect(FileManager.default.fileExists(atPath: folder + "/client.pcapng"))
    // The server's agent is still capturing (limit 120 s); resume collects it.
    #expect(env.agentProcesses().count == 1, "\(env.agentProcesses())")
    let id = (folder as NSString).lastPathComponent
    let resumed = try Tools.run([env.smcpair, "sessions", "resume", id, "--out", env.sessions])
    #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
    #expect(try env.record(folder)["state"] as? String == "complete")
    #expect(FileManager.default.fileExists(atPath: folder + "/server.pcapng"))
    #expect(env.agentsGone().isEmpty, "agents left: \(env.agentProcesses())")
  }
}
