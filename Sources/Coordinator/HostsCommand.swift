import ArgumentParser
import Foundation
import Inventory
import MergePipeline
import Orchestration
import SSHTransport
import Support

/// Options every command that reaches hosts shares.
struct ConnectionOptions: ParsableArguments {
  @Option(
    name: [.customShort("i"), .long],
    help: "Inventory file (hosts can then be named by their inventory name).")
  var inventory: String?

  @Option(
    help: ArgumentHelp("Private key to try (repeatable), before ssh-agent's and ~/.ssh's.", valueName: "file")
  )
  var identity: [String] = []

  @Option(help: ArgumentHelp("known_hosts file to check host keys against.", valueName: "file"))
  var knownHosts: String?

  @Flag(
    help:
      "Record the host keys of hosts not yet known (like OpenSSH's accept-new). Changed keys are always refused."
  )
  var acceptNew = false

  @Option(help: "Seconds to wait for a connection.")
  var connectTimeout: Double = 10

  func baseOptions() -> SSHOptions {
    var options = SSHOptions()
    options.identityFiles = identity
    options.knownHostsFile = knownHosts
    options.acceptNew = acceptNew
    options.connectTimeout = connectTimeout
    return options
  }

  /// The inventory named by `-i`, if any. An inventory that cannot be used is told
  /// precisely, without a usage line: exit 66 when the file cannot be read, 64 when it does
  /// not parse (its `file:line:column` says where).
  func loadInventory(command: String) throws -> Inventory? {
    guard let inventory else { return nil }
    do {
      return try InventoryParser.load(path: inventory)
    } catch {
      throw Self.report(error, command: command)
    }
  }

  /// Prints an inventory error for `smcpair COMMAND` and returns the exit to throw.
  static func report(_ error: InventoryError, command: String) -> ExitCode {
    writeStandardError("smcpair \(command): \(error.description)\n")
    return ExitCode(error.systemError != nil ? 66 : 64)
  }

  /// A target (inventory name, `ssh://[user@]host[:port]`, or an ssh_config alias) and the
  /// options to reach it.
  func resolve(_ text: String, inventory: Inventory?) throws -> (SSHTarget, SSHOptions) {
    let options = baseOptions()
    if let inventory, let host = inventory.host(text) {
      let access = HostAccess(host, in: inventory, base: options, knownHostsOverride: knownHosts)
      return (access.target, access.options)
    }
    if let url = SSHTarget.parse(url: text) { return (url, options) }
    if text.hasPrefix("ssh://") {
      throw ValidationError("'\(text)' is not a valid ssh://[user@]host[:port] target")
    }
    if let inventory, !text.contains("@") && !text.contains(".") && !text.contains(":") {
      // The file as given with -i; the inventory's own path when it came from elsewhere.
      let file = self.inventory ?? inventory.path
      throw ValidationError(
        "'\(text)' is not a host of \(file); hosts: \(inventory.hosts.map(\.name).joined(separator: ", "))"
      )
    }
    guard let target = SSHTarget.parse(jump: text) else { throw ValidationError("'\(text)' is not a host") }
    return (target, options)
  }
}

struct HostsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hosts", abstract: "Check that hosts are reachable, and trust their host keys.",
    subcommands: [HostsCheck.self, HostsTrust.self])
}

struct HostsCheck: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "check",
    abstract: "Connect to hosts in parallel: host key, authentication, round trip, sudo -n, kernel.",
    discussion: """
      Exit status 0 when every host answered, 1 when any failed. Targets: inventory host names \
      (with -i), ssh://[user@]host[:port], or ~/.ssh/config aliases. With -i and no target, every \
      inventory host is checked. After connecting, each host's three commands have --timeout \
      seconds in all and may answer with 64 KiB each at most (a host whose sshd answers every \
      command with endless output fails on its own line).

      Examples:
        smcpair hosts check -i lab.yaml
        smcpair hosts check ssh://root@10.0.0.5:2222 --known-hosts ./known_hosts --json
      """)

  @OptionGroup var connection: ConnectionOptions
  @Argument(help: "Hosts to check.") var targets: [String] = []
  @Flag(help: "One JSON object per host on standard output.") var json = false
  @Option(help: "Seconds each host's commands may take in all, after connecting.") var timeout: Double = 30

  func validate() throws {
    if targets.isEmpty && connection.inventory == nil {
      throw ValidationError("name hosts to check, or pass -i INVENTORY")
    }
    guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
  }

  struct HostToCheck: Sendable {
    var name: String
    var target: SSHTarget
    var options: SSHOptions
    var host: InventoryHost?
  }

  func run() throws {
    let inventory = try connection.loadInventory(command: "hosts check")
    let names = targets.isEmpty ? (inventory?.hosts.map(\.name) ?? []) : targets
    // Each row keeps its own name and options: several inventory hosts may share an address.
    var resolved: [HostToCheck] = []
    for name in names {
      let (target, options) = try connection.resolve(name, inventory: inventory)
      resolved.append(HostToCheck(name: name, target: target, options: options, host: inventory?.host(name)))
    }
    let budget = timeout
    // auto's choice depends on the agent binary smcpair would deploy.
    let agentArchitecture = LocalAgent.elfMachine(siblingExecutable("smcpair-agent"))
    // The same checks the capture preflight makes (Orchestration's HostCheck).
    let rows = ParallelHosts.map(resolved) { entry in
      HostCheck.run(
        name: entry.name, target: entry.target, options: entry.options, budget: budget, host: entry.host,
        agentArchitecture: agentArchitecture)
    }
    if json {
      /// One host's line of `hosts check --json`: the checks' results, or the error.
      struct Line: Encodable {
        struct Failure: Encodable {
          var code: String
          var message: String
        }
        var target: String
        var ok: Bool
        var keyType, fingerprint, auth, sudo, kernel: String?
        var capture: CaptureFacts?
        var hostKeyRecorded: Bool?
        var roundTripMs: Double?
        var error: Failure?

        enum CodingKeys: String, CodingKey {
          case target, ok, fingerprint, auth, sudo, kernel, capture, error
          case keyType = "key_type"
          case hostKeyRecorded = "host_key_recorded"
          case roundTripMs = "round_trip_ms"
        }
      }
      for row in rows {
        var line = Line(target: row.name, ok: row.ok)
        if row.ok {
          line.keyType = row.keyType
          line.fingerprint = row.fingerprint
          line.hostKeyRecorded = row.recorded
          line.auth = row.auth
          line.roundTripMs = (row.roundTripMs * 100).rounded() / 100
          line.sudo = row.sudo
          line.kernel = row.kernel
          line.capture = row.facts.map { CaptureFacts($0, row) }
        } else if let error = row.error {
          line.error = Line.Failure(code: error.code.rawValue, message: error.message)
        }
        print(RecordCoding.text(line))
      }
    } else {
      for row in rows {
        if row.ok {
          print(
            "\(row.name)  ok  \(row.keyType) \(row.fingerprint)\(row.recorded ? " (recorded)" : "")  \(row.auth)  rtt \(String(format: "%.1f", row.roundTripMs)) ms  sudo: \(row.sudo)  kernel \(row.kernel)"
          )
          if let facts = row.facts { print(Self.factsLines(facts, row)) }
        } else {
          print("\(row.name)  FAILED  \(row.error?.description ?? "")")
        }
      }
    }
    if rows.contains(where: { !$0.ok }) { throw ExitCode(1) }
  }

  /// The capture facts under a host's line, and the engine its setting gives.
  static func factsLines(_ facts: HostFacts, _ row: HostCheck) -> String {
    let tcpdump =
      facts.tcpdump.map {
        "\($0) (\(facts.tcpdumpVersion)\(facts.tcpdumpNanoseconds ? ", ns timestamps" : ""))"
      }
      ?? "none"
    var lines = [
      "    \(facts.architecture) \(facts.os), kernel \(facts.kernel): \(facts.dumpSupport)",
      "    SMC module \(facts.smcModuleLoaded ? "loaded" : "not loaded"), smc-tools \(facts.smcTools ?? "absent"), smcdump-ex \(facts.smcdumpEx ?? "absent"), tcpdump \(tcpdump)",
    ]
    switch row.engine {
    case .success(let decision)?:
      lines.append(
        "    engine (\(row.engineSetting.rawValue)): \(decision.engine.rawValue) - \(decision.reason)")
    case .failure(let refusal)?:
      lines.append("    engine (\(row.engineSetting.rawValue)): NONE - \(refusal.message)")
    case nil: break
    }
    return lines.joined(separator: "\n")
  }
}

/// `hosts check --json`'s `capture` object: the host's capture facts and the engine choice.
struct CaptureFacts: Encodable {
  var architecture, os, kernel, dump: String
  var dumpAvailable, smcModule, tcpdumpNanoseconds: Bool
  var smcTools, smcdumpEx, tcpdump, engine, engineReason, engineRefusal: String?
  var engineSetting: String

  enum CodingKeys: String, CodingKey {
    case architecture, os, kernel, dump, tcpdump, engine
    case dumpAvailable = "dump_available"
    case smcModule = "smc_module"
    case tcpdumpNanoseconds = "tcpdump_ns"
    case smcTools = "smc_tools"
    case smcdumpEx = "smcdump_ex"
    case engineSetting = "engine_setting"
    case engineReason = "engine_reason"
    case engineRefusal = "engine_refusal"
  }

  init(_ facts: HostFacts, _ row: HostCheck) {
    architecture = facts.architecture
    os = facts.os
    kernel = facts.kernel
    dump = facts.dumpSupport.description
    dumpAvailable = facts.dumpSupport.available
    smcModule = facts.smcModuleLoaded
    tcpdumpNanoseconds = facts.tcpdumpNanoseconds
    smcTools = facts.smcTools
    smcdumpEx = facts.smcdumpEx
    tcpdump = facts.tcpdump
    engineSetting = row.engineSetting.rawValue
    switch row.engine {
    case .success(let decision)?:
      engine = decision.engine.rawValue
      engineReason = decision.reason
    case .failure(let refusal)?: engineRefusal = refusal.message
    case nil: break
    }
  }
}

struct HostsTrust: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "trust",
    abstract: "Show a host's key fingerprint and record it in known_hosts after confirmation.",
    discussion: "A key that differs from the recorded one is never replaced here: remove the old line first.")

  @OptionGroup var connection: ConnectionOptions
  @Argument(help: "The host.") var target: String
  @Flag(help: "Record without asking.") var yes = false

  func run() throws {
    let (resolvedTarget, options) = try connection.resolve(
      target, inventory: try connection.loadInventory(command: "hosts trust"))
    do {
      let probe = try SSHSession.probeHostKey(resolvedTarget, options: options)
      let known = probe.knownHosts
      let entries = try known.entries(host: probe.host, port: probe.port)
      let fingerprint = KnownHosts.fingerprint(probe.key)
      let name = KnownHosts.lookupName(host: probe.host, port: probe.port)
      guard let recordFile = known.recordFile else {
        writeStandardError(
          "smcpair hosts trust: no user known_hosts file to record in (UserKnownHostsFile none)\n")
        throw ExitCode(1)
      }
      switch HostKeyVerdict(key: probe.key, known: entries) {
      case .known(let entry):
        print("\(name): \(probe.type) \(fingerprint) is already trusted in \(entry.location)")
        return
      case .revoked(let entry):
        writeStandardError(
          "smcpair hosts trust: \(name) presents \(probe.type) \(fingerprint), which \(entry.location) marks @revoked; not recording it.\n"
        )
        throw ExitCode(1)
      case .changed(let stale):
        let lines = stale.map { "\($0.location) has \($0.keyType) \(KnownHosts.fingerprint($0.key))" }
        writeStandardError(
          "smcpair hosts trust: \(name) presents \(probe.type) \(fingerprint) but \(lines.joined(separator: ", ")); not replacing it. If the change is legitimate, remove that line first.\n"
        )
        throw ExitCode(1)
      case .unknown: break
      }
      print("\(name) presents \(probe.type) key \(fingerprint)")
      if !yes {
        guard isatty(0) == 1 else {
          writeStandardError("smcpair hosts trust: not a terminal; pass --yes to record the key\n")
          throw ExitCode(1)
        }
        print("Record it in \(recordFile)? Type 'yes': ", terminator: "")
        guard readLine()?.lowercased() == "yes" else {
          print("not recorded")
          throw ExitCode(1)
        }
      }
      try known.append(host: probe.host, port: probe.port, keyType: probe.type, key: probe.key)
      print("recorded in \(recordFile)")
    } catch {
      guard let failure = error as? SSHError else { throw error }
      writeStandardError("smcpair hosts trust: \(failure.description)\n")
      throw ExitCode(1)
    }
  }
}
