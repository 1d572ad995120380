import Foundation
import Inventory
import TestSupport
import Testing

/// Everything a lab made, as seen from the root namespace.
struct Leftovers: Equatable, CustomStringConvertible {
  var namespaces: [String]
  var links: [String]
  var processes: [String]
  var mounts: [String]
  var stateFolderExists: Bool

  static func of(lab name: String, stateRoot: String) -> Leftovers {
    let namespaces = ((try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? [])
      .filter { $0.hasPrefix("smcpair-\(name)-") }
    let links = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? [])
      .filter {
        $0.hasPrefix("smcv\(name)h") || $0.hasPrefix("smcd\(name)h") || $0 == "smcb-\(name)"
          || $0 == "smcd-\(name)"
      }
    var processes: [String] = []
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(entry) != nil
    {
      guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
        let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
        !stat.contains(") Z")
      else { continue }
      let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
      if line.contains(stateRoot) { processes.append("\(entry): \(line)") }
    }
    let mounts = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
      .split(separator: "\n").map(String.init).filter { $0.contains(stateRoot) }
    return Leftovers(
      namespaces: namespaces, links: links, processes: processes, mounts: mounts,
      stateFolderExists: FileManager.default.fileExists(atPath: "\(stateRoot)/\(name)"))
  }

  var isEmpty: Bool {
    namespaces.isEmpty && links.isEmpty && processes.isEmpty && mounts.isEmpty && !stateFolderExists
  }

  var description: String {
    "namespaces \(namespaces), links \(links), processes \(processes), mounts \(mounts), state folder \(stateFolderExists)"
  }
}

@Suite(.serialized) struct LabLifecycle {
  @Test func threeHostsReachableWithStrictHostKeysThenNothingLeft() throws {
    let lab = try TestLab(hosts: 3, tag: "a")
    let status = lab.status
    #expect(status.up)
    #expect(status.hosts.map(\.name) == ["h1", "h2", "h3"])
    #expect(Set(status.hosts.map(\.address)).count == 3)
    #expect(status.hosts.allSatisfy { $0.dump_device.hasPrefix("smc-dummy") && $0.dump_device.count == 13 })
    // Two networks: SSH on eth0, the workloads' data0 on a subnet of its own.
    #expect(status.layout == "management-and-data")
    let dataAddresses = status.hosts.compactMap(\.data_address)
    #expect(dataAddresses.count == 3 && Set(dataAddresses).count == 3)
    for host in status.hosts {
      #expect(
        host.data_address?.split(separator: ".").prefix(3) != host.address.split(separator: ".").prefix(3))
    }
    // Real OpenSSH, strict host keys, the lab's known_hosts and key only.
    for host in status.hosts {
      let result = try Tools.run([
        "ssh", "-i", status.identity, "-o", "UserKnownHostsFile=\(status.known_hosts)", "-o",
        "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-p",
        "\(host.port)",
        "root@\(host.address)",
        "cat /sys/class/net/\(host.dump_device)/operstate; ip -4 -o addr show dev eth0; ip -4 -o addr show dev data0",
      ])
      #expect(result.status == 0, "ssh to \(host.name): \(result.stderr)")
      let lines = result.stdout.split(separator: "\n")
      #expect(lines.contains { $0.contains(" eth0 ") && $0.contains("inet \(host.address)/24") }, "\(lines)")
      #expect(
        lines.contains { $0.contains(" data0 ") && $0.contains("inet \(host.data_address ?? "-")/24") },
        "\(lines)")
    }
    // A host key that does not match is refused (the check is real).
    let wrong = lab.stateRoot.file("wrong_known_hosts")
    let other = try String(contentsOfFile: status.known_hosts, encoding: .utf8).split(separator: "\n")
    let swapped =
      "\(status.hosts[0].address) \(other[1].split(separator: " ").dropFirst().joined(separator: " "))\n"
    try swapped.write(toFile: wrong, atomically: true, encoding: .utf8)
    let refused = try Tools.run([
      "ssh", "-i", status.identity, "-o", "UserKnownHostsFile=\(wrong)", "-o", "StrictHostKeyChecking=yes",
      "-o", "BatchMode=yes", "-o", "GlobalKnownHostsFile=/dev/null", "root@\(status.hosts[0].address)",
      "true",
    ])
    #expect(refused.status != 0)
    #expect(
      refused.stderr.contains("HOST IDENTIFICATION HAS CHANGED")
        || refused.stderr.contains("verification failed"))

    // The inventory it wrote parses and describes the lab.
    let inventory = try InventoryParser.load(path: status.inventory)
    #expect(inventory.hosts.map(\.address) == status.hosts.map(\.address))
    #expect(
      inventory.hosts.allSatisfy { $0.identity == status.identity && $0.knownHosts == status.known_hosts })
    #expect(inventory.hosts.map(\.smcDump.description) == status.hosts.map(\.dump_device))
    // Captures go on the data NIC (where the SMC traffic is); workloads use the data address.
    #expect(inventory.hosts.allSatisfy { $0.nics == ["data0"] })
    #expect(inventory.hosts.map(\.dataAddress) == status.hosts.map(\.data_address))
    #expect(inventory.pairs.map(\.name) == ["pair1"])

    // Idempotent: a second up changes nothing.
    let again = try Tools.run([lab.smcpair, "lab", "up", "--hosts", "3"] + lab.common)
    #expect(again.status == 0)
    #expect(again.stdout.contains("already up"))

    #expect(!Leftovers.of(lab: lab.name, stateRoot: lab.stateRoot.path).isEmpty)
    let down = try lab.down()
    #expect(down.status == 0, "\(down.stderr)")
    let left = Leftovers.of(lab: lab.name, stateRoot: lab.stateRoot.path)
    #expect(left.isEmpty, "\(left)")
    // Down again is harmless.
    #expect(try lab.down().status == 0)
  }

  @Test func singleNetworkLabHasEth0OnlyAndLeavesNothing() throws {
    let lab = try TestLab(hosts: 2, tag: "n", singleNetwork: true)
    #expect(lab.status.up)
    #expect(lab.status.layout == "single")
    #expect(lab.status.hosts.allSatisfy { $0.data_address == nil })
    let inventory = try InventoryParser.load(path: lab.status.inventory)
    #expect(inventory.hosts.allSatisfy { $0.nics == ["eth0"] && $0.dataAddress == nil })
    let data = try lab.run(0, ["ip", "link", "show", "data0"])
    #expect(data.status != 0, "no data0 in a single-network lab: \(data.stdout)")
    #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/smcd-\(lab.name)"))
    #expect(try lab.down().status == 0)
    let left = Leftovers.of(lab: lab.name, stateRoot: lab.stateRoot.path)
    #expect(left.isEmpty, "\(left)")
  }

  @Test func downAfterLostStateStillRemovesEverything() throws {
    let lab = try TestLab(hosts: 2, tag: "b")
    // As after a crash that lost the record: only the naming is left to go by.
    try FileManager.default.removeItem(atPath: "\(lab.stateRoot.path)/\(lab.name)/lab.json")
    #expect(try lab.down().status == 0)
    let left = Leftovers.of(lab: lab.name, stateRoot: lab.stateRoot.path)
    #expect(left.isEmpty, "\(left)")
  }

  @Test func thirtyTwoHostsUpAndDown() throws {
    let lab = try TestLab(hosts: 32, tag: "c")
    #expect(lab.status.up)
    #expect(lab.status.hosts.count == 32)
    let started = Date()
    #expect(try lab.down().status == 0)
    let downSeconds = Date().timeIntervalSince(started)
    print(String(format: "lab of 32 hosts: up %.2f s, down %.2f s", lab.upSeconds, downSeconds))
    let left = Leftovers.of(lab: lab.name, stateRoot: lab.stateRoot.path)
    #expect(left.isEmpty, "\(left)")
  }

  @Test func badArgumentsAreUsageErrors() throws {
    let smcpair = try Tools.product("smcpair")
    let tooMany = try Tools.run([smcpair, "lab", "up", "--hosts", "65"])
    #expect(tooMany.status == 64)
    #expect(tooMany.stderr.contains("--hosts must be between 1 and 64"))
    let badName = try Tools.run([smcpair, "lab", "up", "--name", "Bad_Name"])
    #expect(badName.status == 64)
    #expect(badName.stderr.contains("1 to 8 lower-case letters or digits"))
    let missing = try Tools.run([smcpair, "lab", "status", "--name", "nolab", "--state-root", "/nonexistent"])
    #expect(missing.status == 1)
    #expect(missing.stdout.contains("not up"))
  }
}

/// `lab down` stops what still runs inside the lab's hosts (an sshd session whose client
/// vanished, an agent, a workload): nothing keeps a deleted namespace alive.
@Suite(.serialized) struct LabDownStopsHostProcesses {
  @Test func aProcessLeftInAHostIsStopped() throws {
    let lab = try TestLab(hosts: 1, tag: "q")
    let work = try TemporaryDirectory()
    let leftover = try lab.start(0, ["/bin/sleep", "300"], log: work.file("sleep"))
    usleep(200_000)
    #expect(leftover.exitStatus == nil, "running before lab down")
    let down = try lab.down()
    #expect(down.status == 0, "\(down.stderr)")
    #expect(leftover.wait(seconds: 10) != nil, "stopped by lab down")
    #expect(down.stdout.contains("processes stopped"))
  }

  /// With an SSH session open on a host: when `lab down` returns, the listener, the session's
  /// sshd and its command have all exited (a zombie waiting for PID 1 holds nothing), and the
  /// same lab comes up again at once.
  @Test func sshdAndItsSessionsHaveExitedWhenDownReturns() throws {
    let lab = try TestLab(hosts: 1, tag: "w")
    let work = try TemporaryDirectory()
    let host = lab.status.hosts[0]
    let session = try BackgroundProcess(
      [
        try Tools.require("ssh"), "-i", lab.status.identity, "-o",
        "UserKnownHostsFile=\(lab.status.known_hosts)",
        "-o", "BatchMode=yes", "root@\(host.address)", "sleep 60",
      ], stdout: work.file("ssh.out"), stderr: work.file("ssh.err"))
    var pids: [Int32] = []
    for _ in 0..<200 where pids.count < 3 {
      usleep(20_000)
      let listed = try Tools.run(["ip", "netns", "pids", host.namespace]).stdout
      pids = listed.split(separator: "\n").compactMap { Int32($0) }
    }
    #expect(pids.count >= 3, "listener, session sshd and sleep: \(pids)")
    let down = try lab.down()
    #expect(down.status == 0, "\(down.stderr)")
    for pid in pids {
      let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
      let state = stat.split(separator: ")").last?.split(separator: " ").first ?? "gone"
      #expect(
        state == "Z" || state == "gone" || stat.isEmpty, "pid \(pid) still runs after lab down: \(stat)")
    }
    session.stop()
    let again = try Tools.run([lab.smcpair, "lab", "up", "--hosts", "1"] + lab.common)
    #expect(again.status == 0, "\(again.stderr)")
  }
}
