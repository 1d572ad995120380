import Foundation
import TestSupport
import Testing

/// Many pairs at once, and inventories in Ansible's formats.
@Suite(.serialized) struct CaptureScale {
  @Test func eightPairsOnSixteenHostsAtOnce() throws {
    let env = try CaptureLab(hosts: 16, tag: "ch")
    let result = try env.capture(["--all-pairs", "--json"] + env.emulatorWorkload(scenario: "pingpong"))
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pairs = try #require(try env.summary(result)["pairs"] as? [[String: Any]])
    #expect(pairs.count == 8)
    #expect(Set(pairs.compactMap { $0["pair"] as? String }) == Set((1...8).map { "pair\($0)" }))
    for pair in pairs {
      #expect(pair["state"] as? String == "complete", "\(pair)")
      let folder = try #require(pair["folder"] as? String)
      let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/alignment.json"))
      let aligned = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
      #expect((aligned.object("pairs")["cdc"] as? Int ?? 0) > 0)
      #expect((aligned.number("offset_lower_ns") ?? 1) <= 0 && (aligned.number("offset_upper_ns") ?? -1) >= 0)
      #expect(aligned["causality_violations"] as? Int == 0)
    }
    #expect(env.agentsGone().isEmpty, "agents left: \(env.agentProcesses())")
  }

  /// The lab's hosts described as Ansible would: INI with --client/--server, YAML with a
  /// pairs overlay.
  @Test func ansibleINIAndYAMLInventoriesDriveACapture() throws {
    let env = try CaptureLab(hosts: 2, tag: "ci")
    let status = env.lab.status
    let smcpairAgent = (env.smcpair as NSString).deletingLastPathComponent + "/smcpair-agent"
    var ini = "# Ansible inventory of the lab\n[smc]\n"
    for host in status.hosts {
      ini +=
        "\(host.name) ansible_host=\(host.address) ansible_port=\(host.port) smcpair_smc_dump=\(host.dump_device)\n"
    }
    ini += """
      [smc:vars]
      ansible_user=root
      ansible_ssh_private_key_file=\(status.identity)
      smcpair_known_hosts=\(status.known_hosts)
      smcpair_agent=\(smcpairAgent)
      smcpair_agent_root=\(env.agentRoot)

      """
    let iniPath = env.work.file("hosts.ini")
    try ini.write(toFile: iniPath, atomically: true, encoding: .utf8)
    let first = try env.capture(
      ["--client", "h1", "--server", "h2", "--json"] + env.emulatorWorkload(scenario: "pingpong"),
      inventory: iniPath)
    #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
    let pair = try #require((try env.summary(first)["pairs"] as? [[String: Any]])?.first)
    #expect(pair["pair"] as? String == "h1-h2")
    #expect(pair.object("alignment")["verdict"] as? String == "bounded")

    var yaml = "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: \(status.identity)\n"
    yaml += "    smcpair_known_hosts: \(status.known_hosts)\n    smcpair_agent: \(smcpairAgent)\n"
    yaml += "    smcpair_agent_root: \(env.agentRoot)\n  children:\n    smc:\n      hosts:\n"
    for host in status.hosts {
      yaml += "        \(host.name):\n          ansible_host: \(host.address)\n"
      yaml += "          smcpair_smc_dump: \(host.dump_device)\n"
    }
    let yamlPath = env.work.file("hosts.yaml")
    try yaml.write(toFile: yamlPath, atomically: true, encoding: .utf8)
    let pairsPath = env.work.file("pairs.yaml")
    try "pairs:\n  db:\n    client: h2\n    server: h1\n    filter: tcp port 7300\n".write(
      toFile: pairsPath, atomically: true, encoding: .utf8)
    let second = try env.capture(
      ["--pairs-file", pairsPath, "--pair", "db", "--json"]
        + env.emulatorWorkload(scenario: "bulk", port: 7300),
      inventory: yamlPath)
    #expect(second.status == 0, "\(second.stdout)\n\(second.stderr)")
    let db = try #require((try env.summary(second)["pairs"] as? [[String: Any]])?.first)
    #expect(db["pair"] as? String == "db")
    #expect((db.object("sides").object("client")["host"] as? String) == "h2")
    let folder = try #require(db["folder"] as? String)
    // The overlay's filter was used: the fabric (port 7301) is not in the capture.
    let fabric = try Tools.run([
      "tshark", "-r", folder + "/client.pcapng", "-Y", "tcp.port == 7301", "-T", "fields", "-e",
      "frame.number",
    ])
    #expect(fabric.status == 0)
    #expect(fabric.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    // On the dump device the filter reads 'udp port 7300': the CDC records are all there.
    let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/alignment.json"))
    let aligned = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    #expect((aligned.object("pairs")["cdc"] as? Int ?? 0) > 0, "\(aligned)")
    #expect(try env.record(folder)["dump_filter"] as? String == "udp port 7300")
    #expect(env.agentsGone().isEmpty)
  }
}
