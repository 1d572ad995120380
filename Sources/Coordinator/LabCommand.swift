import ArgumentParser
import Foundation
import Lab
import Support

/// `smcpair lab`: hosts in network namespaces, for trying smcpair on one machine.
struct LabCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lab",
    abstract: "A local lab: hosts in network namespaces with sshd and emulated SMC peers.",
    discussion: """
      Each lab host is a network namespace with eth0 on a management bridge (sshd; the root \
      namespace reaches every host), data0 on a separate data bridge (the address workloads and the \
      SMC peer emulator use, like a RoCE subnet; --single-network leaves it out), its own OpenSSH \
      sshd, and a stand-in for the SMC dump device (smc-dummyXXXX). 'lab up' writes a client key, a \
      known_hosts file and an inventory for the lab. Needs root.

      Examples:
        smcpair lab up --hosts 4
        smcpair lab status --json
        ssh -i <identity> -o UserKnownHostsFile=<known_hosts> root@<address>
        smcpair lab down
      """,
    subcommands: [LabUp.self, LabDown.self, LabStatus.self, LabPeer.self, LabBlast.self]
  )
}

struct LabOptions: ParsableArguments {
  @Option(help: "Lab name (1-8 lower-case letters or digits).")
  var name = "lab"

  @Option(
    help: ArgumentHelp("Folder for lab state (default: ~/.local/state/smcpair/labs).", valueName: "dir"))
  var stateRoot: String?

  func lab() throws -> Lab {
    do {
      return try Lab(name: name, stateRoot: stateRoot)
    } catch {
      throw ValidationError(error.description)
    }
  }
}

struct LabUp: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "up", abstract: "Create the lab (idempotent: an existing healthy lab is left as it is).")

  @OptionGroup var options: LabOptions
  @Option(help: "Number of hosts, h1..hN (1-64).") var hosts = 2
  @Flag(help: "One network only: SSH and workloads share eth0 (no data0, no data bridge).")
  var singleNetwork = false
  @Option(
    help: ArgumentHelp(
      "A host the agent may not be deployed to (deploy_agent: false), so capture's engine auto picks smcdump-ex or tcpdump there (repeatable).",
      valueName: "host"))
  var agentless: [String] = []

  func validate() throws {
    guard (1...Lab.maximumHosts).contains(hosts) else {
      throw ValidationError("--hosts must be between 1 and \(Lab.maximumHosts)")
    }
  }

  func run() throws {
    let lab = try options.lab()
    let started = Date()
    do {
      let state = try lab.up(
        hosts: hosts, layout: singleNetwork ? .single : .managementAndData,
        agentPath: siblingExecutable("smcpair-agent"), agentless: Set(agentless)
      ) { print($0) }
      let hostList = state.hosts.map { host in
        "\(host.name)=\(host.address)" + (host.dataAddress.map { " (data \($0))" } ?? "")
      }
      print(
        "hosts: \(hostList.joined(separator: " "))  (\(String(format: "%.2f", Date().timeIntervalSince(started))) s)"
      )
      print("inventory:   \(state.inventory)")
      print("identity:    \(state.identity)")
      print("known_hosts: \(state.knownHosts)")
    } catch {
      writeStandardError("smcpair lab up: \(error.description)\n")
      writeStandardError(
        "smcpair lab up: run 'smcpair lab down --name \(options.name)' to remove what was made\n")
      throw ExitCode(1)
    }
  }
}

struct LabDown: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "down",
    abstract: "Remove everything 'lab up' made (also after a crashed up). Safe to repeat.")

  @OptionGroup var options: LabOptions

  func run() throws {
    do {
      try options.lab().down { print($0) }
    } catch let error as LabError {
      writeStandardError("smcpair lab down: \(error.description)\n")
      throw ExitCode(1)
    }
  }
}

struct LabStatus: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status", abstract: "Show the lab's hosts and whether they are healthy.")

  @OptionGroup var options: LabOptions
  @Flag(
    help:
      "JSON: name, layout, inventory, identity, known_hosts, hosts [{name, namespace, address, data_address, port, dump_device}]."
  )
  var json = false

  func run() throws {
    let lab = try options.lab()
    guard let state = lab.state() else {
      if json {
        print("{\"name\":\"\(options.name)\",\"up\":false,\"hosts\":[]}")
      } else {
        print("lab '\(options.name)' is not up (smcpair lab up --name \(options.name))")
      }
      throw ExitCode(1)
    }
    let health = lab.health(state)
    if json {
      struct Host: Encodable {
        var name, namespace, address: String
        /// Left out in a single-network lab.
        var data_address: String?
        var port: Int
        var dump_device: String
        var healthy: Bool
      }
      struct Status: Encodable {
        var name, layout, inventory, identity, known_hosts: String
        var up: Bool
        var complete: Bool
        var hosts: [Host]
      }
      let status = Status(
        name: state.name, layout: state.layout.rawValue, inventory: state.inventory, identity: state.identity,
        known_hosts: state.knownHosts,
        up: state.complete && health.allSatisfy(\.healthy), complete: state.complete,
        hosts: health.map {
          Host(
            name: $0.host.name, namespace: $0.host.namespace, address: $0.host.address,
            data_address: $0.host.dataAddress, port: $0.host.port,
            dump_device: $0.host.dumpDevice, healthy: $0.healthy)
        })
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
      print(String(decoding: try encoder.encode(status), as: UTF8.self))
    } else {
      print(
        "lab '\(state.name)' (\(state.layout.rawValue))\(state.complete ? "" : " (incomplete: run lab down, then lab up)")"
      )
      print(
        "  inventory:   \(state.inventory)\n  identity:    \(state.identity)\n  known_hosts: \(state.knownHosts)"
      )
      for entry in health {
        let h = entry.host
        print(
          "  \(h.name)  \(h.address):\(h.port)\(h.dataAddress.map { "  data \($0)" } ?? "")  netns \(h.namespace)  dump \(h.dumpDevice)  \(entry.healthy ? "ok" : (entry.namespaceExists ? "sshd not running" : "namespace missing"))"
        )
      }
    }
    if !(state.complete && health.allSatisfy(\.healthy)) { throw ExitCode(1) }
  }
}
