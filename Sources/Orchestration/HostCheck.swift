import Foundation
import Inventory
import SSHTransport

/// The host checks `smcpair hosts check` and the capture preflight share, so the two cannot
/// drift: what a connection says about the host (key, authentication), the `sudo -n` probe,
/// and the round trip and kernel release that `hosts check` adds. The capture preflight goes
/// on to the agent (`CaptureSide.prepareHost`); `hosts check` stops here.
public struct HostCheck: Sendable {
  public var name: String
  public var keyType = ""
  public var fingerprint = ""
  /// This connection recorded the host key (accept-new).
  public var recorded = false
  public var auth = ""
  public var roundTripMs = 0.0
  /// `root`, `yes`, or `no (sudo -n refused)`.
  public var sudo = ""
  public var kernel = ""
  /// What the host offers for capturing (`HostFacts`).
  public var facts: HostFacts?
  /// The engine the host's setting gives here, and why; or why none fits.
  public var engine: Result<EngineDecision, EngineRefusal>?
  /// The host's `engine:` setting the choice was made for.
  public var engineSetting = CaptureEngineSetting.auto
  public var error: SSHError?
  public var ok: Bool { error == nil }

  public init(name: String) { self.name = name }

  /// What the connection itself says about the host.
  mutating func record(_ session: SSHSession) {
    keyType = session.hostKey.type
    fingerprint = session.hostKey.fingerprint
    recorded = session.hostKey.recorded
    auth = session.authMethod
  }

  /// Connects to `target` and checks it: host key, authentication, round trip, kernel and
  /// `sudo -n`. After connecting, the commands have `budget` seconds in all and 64 KiB of
  /// output each. Never throws: a failure is the result's `error`.
  /// `host` gives the engine setting (`engine:`, `deploy_agent:`, `smcdump_ex:`; defaults for
  /// a target outside the inventory); `agentArchitecture` is the local agent binary's.
  public static func run(
    name: String, target: SSHTarget, options: SSHOptions, budget: Double, host: InventoryHost? = nil,
    agentArchitecture: String? = nil
  ) -> HostCheck {
    var check = HostCheck(name: name)
    do throws(SSHError) {
      let session = try SSHSession.connect(target, options: options)
      defer { session.close() }
      check.record(session)
      let end = Date().addingTimeInterval(budget)
      func limits() -> CommandLimits {
        CommandLimits(
          seconds: max(0.001, min(options.commandLimits.seconds ?? budget, end.timeIntervalSinceNow)))
      }
      let started = Date()
      _ = try session.run("true", purpose: "checking the round trip ('true')", limits: limits())
      check.roundTripMs = Date().timeIntervalSince(started) * 1000
      // One script reads the kernel release and every capture fact.
      let host = host ?? InventoryHost(name: name, address: target.host)
      let facts = try HostFacts.read(session, host: host, limits: limits())
      check.facts = facts
      check.kernel = facts.kernel.isEmpty ? "unknown" : facts.kernel
      check.engineSetting = host.engine
      check.engine = EngineDecision.choose(
        host.engine, facts: facts, agentArchitecture: agentArchitecture, deployAllowed: host.deployAgent,
        dumpWanted: host.smcDump != .off)
      if session.user == "root" {
        check.sudo = "root"
      } else {
        check.sudo = try sudoRefusal(session, limits: limits()) == nil ? "yes" : "no (sudo -n refused)"
      }
    } catch {
      check.error = error
    }
    return check
  }

  /// Runs `sudo -n true`: nil when sudo allows it without a password, else what sudo said.
  static func sudoRefusal(_ session: SSHSession, limits: CommandLimits? = nil) throws(SSHError) -> String? {
    let sudo = try session.run(
      RemoteCommand.join(["sudo", "-n", "true"]), purpose: "checking 'sudo -n true'", limits: limits)
    guard sudo.exitStatus != 0 else { return nil }
    return sudo.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)
  }
}
