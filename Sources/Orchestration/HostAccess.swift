import Inventory
import SSHTransport

/// A step of a capture that failed on one host: which host, at which step, and what to do.
public struct CaptureFailure: Error, Sendable, CustomStringConvertible {
  public var host: String
  public var step: String
  public var message: String
  /// The connection stopped answering or broke (not: the agent refused or ended).
  public var connectionLost = false

  public init(host: String, step: String, _ message: String, connectionLost: Bool = false) {
    self.host = host
    self.step = step
    self.message = message
    self.connectionLost = connectionLost
  }

  public var description: String { "\(host): \(step): \(message)" }
}

/// How to reach an inventory host and how to run the agent there. Every remote command line
/// is built from an argument vector with `RemoteCommand.join` (never by pasting text).
public struct HostAccess: Sendable {
  public var host: InventoryHost
  public var target: SSHTarget
  public var options: SSHOptions

  /// `base` carries the command line's identities, known_hosts and timeouts; the inventory
  /// adds the host's identity, known_hosts (unless the command line named one) and jump host.
  public init(
    _ host: InventoryHost, in inventory: Inventory, base: SSHOptions, knownHostsOverride: String? = nil
  ) {
    var options = base
    if let identity = host.identity { options.identityFiles.append(identity) }
    options.knownHostsFile = knownHostsOverride ?? host.knownHosts ?? base.knownHostsFile
    if let jump = host.jump {
      if let jumpHost = inventory.host(jump) {
        options.proxyJump = [SSHTarget(user: jumpHost.user, host: jumpHost.address, port: jumpHost.port)]
      } else if let url = SSHTarget.parse(url: jump), url.path == nil {
        options.proxyJump = [url]
      } else {
        // Never connect directly when a jump host was asked for.
        options.unusableJump =
          "\(host.location): jump '\(jump)' is neither a host of the inventory nor an ssh://[user@]host[:port] target; refusing to connect without it"
      }
    }
    self.host = host
    target = SSHTarget(user: host.user, host: host.address, port: host.port)
    self.options = options
  }

  /// True when commands that need root go through `sudo -n`.
  public var usesSudo: Bool { host.become == .sudo && host.user != "root" }

  /// `argv` as a remote command line, behind `sudo -n --` when the host says `become: sudo`.
  public func privileged(_ argv: [String]) -> String {
    RemoteCommand.join(privilegedArgv(argv))
  }

  /// `argv`, behind `sudo -n --` when the host needs it.
  public func privilegedArgv(_ argv: [String]) -> [String] {
    usesSudo ? ["sudo", "-n", "--"] + argv : argv
  }

  /// The agent with its state folder, then `arguments` (`serve`, `attach SESSION`, ...).
  public func agentCommand(_ arguments: [String]) -> String {
    RemoteCommand.join(agentArgv(arguments))
  }

  /// The agent's argument vector with `arguments`, through `sudo -n` when the host needs it.
  public func agentArgv(_ arguments: [String]) -> [String] {
    var argv = [host.agentPath]
    if let root = host.agentRoot { argv += ["--root", root] }
    return privilegedArgv(argv + arguments)
  }

  public func connect(step: String = "connecting") throws(CaptureFailure) -> SSHSession {
    do {
      return try SSHSession.connect(target, options: options)
    } catch {
      throw CaptureFailure(host: host.name, step: step, error.message)
    }
  }
}
