import Foundation
import TestSupport
import Testing

/// Hosts whose sshd answers every command with something else (`ForceCommand` in its
/// sshd_config): `hosts check` and `capture` end with that host's own error, in bounded
/// memory, and the other host is left clean. The 120 s guard only stops a hang; no duration
/// is asserted.
@Suite(.serialized) struct HostileHosts {
  /// Peak resident memory allowed for one hostile host.
  static let boundMiB = 100.0

  /// `engine`: `agent` goes straight to the agent's check script (`--engine agent`); `auto`
  /// reads the host's capture facts first.
  func checkAndCapture(_ env: CaptureLab, engine: String = "agent") throws -> (
    check: MeasuredRun, capture: MeasuredRun
  ) {
    let check = try MeasuredRun(
      [env.smcpair, "hosts", "check", "-i", env.inventory, "--connect-timeout", "5"], in: env.work)
    let capture = try MeasuredRun(
      [
        env.smcpair, "capture", "-i", env.inventory, "--out", env.sessions, "--connect-timeout", "5",
        "--pair",
        "pair1", "--duration", "5s", "--engine", engine,
      ], in: env.work)
    print("hosts check: exit \(check.status), peak RSS \(check.peakRSSMiB) MiB")
    print("capture: exit \(capture.status), peak RSS \(capture.peakRSSMiB) MiB")
    return (check, capture)
  }

  /// Both commands ended with h2's own error in bounded memory, h1 checked fine, nothing
  /// armed and no agent left: `checkErrors` must be in h2's check row, `captureError` in the
  /// capture's output.
  func expectHostsOwnError(
    _ env: CaptureLab, _ check: MeasuredRun, _ capture: MeasuredRun, checkErrors: [String],
    captureError: String, sourceLocation: SourceLocation = #_sourceLocation
  ) {
    #expect(check.stoppedBecause == nil, "\(check.stoppedBecause ?? "")", sourceLocation: sourceLocation)
    #expect(check.status == 1, "\(check.stdout)\n\(check.stderr)", sourceLocation: sourceLocation)
    #expect(check.stdout.contains("h1  ok"), "\(check.stdout)", sourceLocation: sourceLocation)
    let h2 = check.stdout.split(separator: "\n").first { $0.hasPrefix("h2") }.map(String.init) ?? ""
    #expect(h2.contains("FAILED"), "\(check.stdout)", sourceLocation: sourceLocation)
    for text in checkErrors {
      #expect(h2.contains(text), "\(h2)", sourceLocation: sourceLocation)
    }
    #expect(
      check.peakRSSMiB > 0 && check.peakRSSMiB < HostileHosts.boundMiB, "\(check.peakRSSMiB) MiB",
      sourceLocation: sourceLocation)

    #expect(capture.stoppedBecause == nil, "\(capture.stoppedBecause ?? "")", sourceLocation: sourceLocation)
    #expect(capture.status == 1, "\(capture.stdout)\n\(capture.stderr)", sourceLocation: sourceLocation)
    #expect(
      capture.stdout.contains("h2: checking and starting the agent:"), "\(capture.stdout)",
      sourceLocation: sourceLocation)
    #expect(capture.stdout.contains(captureError), "\(capture.stdout)", sourceLocation: sourceLocation)
    #expect(!capture.stdout.contains("capturing on both sides"), sourceLocation: sourceLocation)
    #expect(
      capture.peakRSSMiB > 0 && capture.peakRSSMiB < HostileHosts.boundMiB, "\(capture.peakRSSMiB) MiB",
      sourceLocation: sourceLocation)
    #expect(env.agentsGone().isEmpty, "agents left: \(env.agentProcesses())", sourceLocation: sourceLocation)
  }

  /// `ForceCommand yes`: endless output on every command. Before the output caps, `hosts
  /// check` grew to 17 GiB and `capture` to 4 GiB.
  @Test func endlessOutputIsCutOffWithTheHostsOwnError() throws {
    let env = try CaptureLab(hosts: 2, tag: "hy")
    try env.lab.forceCommand(host: 1, "yes")
    let (check, capture) = try checkAndCapture(env)
    expectHostsOwnError(
      env, check, capture, checkErrors: ["checking the round trip", "more than 64 KiB on stdout"],
      captureError: "more than 64 KiB")
    // With engine auto, the first command is the capture facts script: cut off the same way.
    let (_, auto) = try checkAndCapture(env, engine: "auto")
    #expect(auto.status == 1, "\(auto.stdout)\n\(auto.stderr)")
    #expect(
      auto.stdout.contains("h2: choosing the capture engine: reading the host's capture facts"),
      "\(auto.stdout)")
    #expect(auto.stdout.contains("more than 64 KiB"), "\(auto.stdout)")
    #expect(!auto.stdout.contains("capturing on both sides"))
    #expect(auto.peakRSSMiB > 0 && auto.peakRSSMiB < HostileHosts.boundMiB, "\(auto.peakRSSMiB) MiB")
    #expect(env.agentsGone().isEmpty, "agents left: \(env.agentProcesses())")
  }

  /// A line every 2 s on every command: each line used to restart the 30 s inactivity
  /// timer, so `hosts check` and the capture preflight waited for ever. Now the overall
  /// deadline (30 s by default) ends them with the host's error.
  @Test func aLineEveryTwoSecondsRunsIntoTheOverallDeadline() throws {
    let env = try CaptureLab(hosts: 2, tag: "hz")
    try env.lab.forceCommand(host: 1, "sh -c 'while :; do echo x; sleep 2; done'")
    let (check, capture) = try checkAndCapture(env)
    expectHostsOwnError(
      env, check, capture, checkErrors: ["checking the round trip ('true'): not finished after 30 s"],
      captureError: "did not reach the agent's start within 30 s")
  }
}
