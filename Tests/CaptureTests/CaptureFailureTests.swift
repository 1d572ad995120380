import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Partial failures: nothing left running, what was captured is kept and marked.
@Suite(.serialized) struct CaptureFailures {
  /// The pid of lab host `index`'s sshd, from the lab's own record.
  func sshdPID(_ env: CaptureLab, host index: Int) throws -> Int32 {
    let data = try Data(contentsOf: URL(fileURLWithPath: env.labFolder + "/lab.json"))
    let state = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let hosts = try #require(state["hosts"] as? [[String: Any]])
    return try #require((hosts[index]["sshd_pid"] as? NSNumber)?.int32Value)
  }

  @Test func stoppedSSHDOnOneHostFailsCleanlyAndNothingIsLeftRunning() throws {
    let env = try CaptureLab(hosts: 2, tag: "cd")
    let pid = try sshdPID(env, host: 1)
    #expect(kill(pid, SIGTERM) == 0)
    usleep(300_000)
    let result = try env.capture(["--pair", "pair1", "--duration", "5s"])
    // It fails in the preflight, before anything is armed: no side ever started.
    env.expectRefusedInPreflight(result, saying: "h2: connecting:")
    #expect(result.stdout.contains("Connection refused") || result.stdout.contains("refused"))
    let folder = try #require(env.sessionFolders().first)
    let record = try env.record(folder)
    #expect(record["state"] as? String == "failed")
    #expect((record.object("sides").object("server")["failure"] as? String)?.contains("h2") == true)
    #expect(record.object("sides").object("client")["started_ns"] == nil)
  }

  @Test func agentKilledMidCaptureThePartialFileIsPulledAndMarked() throws {
    let env = try CaptureLab(hosts: 2, tag: "ce")
    let process = try env.startCapture(["--pair", "pair1", "--duration", "20s"])
    try env.blast()
    let agent = try #require(try env.agentPID(host: 1))
    #expect(kill(agent, SIGKILL) == 0)
    let status = process.wait(seconds: 60)
    let text = env.runOutput
    #expect(status == 2, "\(text)")
    #expect(text.contains("ENDED EARLY"), "\(text)")
    let folder = try #require(env.sessionFolders().first)
    let record = try env.record(folder)
    #expect(record["state"] as? String == "partial")
    #expect(record.object("sides").object("server")["ended_early"] != nil)
    #expect(record.object("sides").object("client")["ended_early"] == nil)
    // The server's file up to the agent's last flush is here, and readable.
    let decoded = try Tools.run([env.smcpair, "decode", folder + "/server.pcapng", "--quiet"])
    #expect(decoded.status == 0, "\(decoded.stderr)")
    let count = try Tools.run(["capinfos", "-c", "-M", folder + "/server.pcapng"])
    #expect(count.status == 0, "\(count.stderr)")
    #expect(FileManager.default.fileExists(atPath: folder + "/client.pcapng"))
    #expect((try String(contentsOfFile: folder + "/report.md", encoding: .utf8)).contains("## Capture gaps"))
    #expect(env.agentsGone().isEmpty, "agents left: \(env.agentProcesses())")
  }

  @Test func coordinatorKilledThenSessionsResumeRecoversBothSides() throws {
    let env = try CaptureLab(hosts: 2, tag: "cf")
    let process = try env.startCapture(["--pair", "pair1", "--duration", "120s"])
    try env.blast()
    kill(process.pid, SIGKILL)
    _ = process.wait(seconds: 10)
    // The agents keep capturing (their limit is 120 s) without their control connection.
    usleep(500_000)
    #expect(env.agentProcesses().count == 2, "\(env.agentProcesses())")
    let list = try Tools.run([env.smcpair, "sessions", "list", "--out", env.sessions])
    let folder = try #require(env.sessionFolders().first)
    let id = (folder as NSString).lastPathComponent
    #expect(list.stdout.contains("\(id)  capturing"), "\(list.stdout)")
    let resumed = try Tools.run([env.smcpair, "sessions", "resume", id, "--out", env.sessions])
    #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
    let record = try env.record(folder)
    #expect(record["state"] as? String == "complete")
    // Only UDP datagrams crossed (nothing pairable): the agents' clock probe from the original run
    // aligns the two sides, with bounds that hold the truth (one kernel clock: 0).
    let alignment = record.object("alignment")
    #expect(alignment["verdict"] as? String == "probe")
    #expect(
      (alignment.number("offset_lower_ns") ?? 1) <= 0 && (alignment.number("offset_upper_ns") ?? -1) >= 0)
    for role in ["client", "server"] {
      #expect(FileManager.default.fileExists(atPath: "\(folder)/\(role).pcapng"))
    }
    #expect(env.agentsGone().isEmpty, "agents left: \(env.agentProcesses())")
    let again = try Tools.run([env.smcpair, "sessions", "list", "--out", env.sessions])
    #expect(again.stdout.contains("\(id)  complete"))
  }
}
