import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Secrets of an Ansible inventory never reach a session folder, and `sessions resume`
/// still finds the hosts (session.json keeps them as parsed).
@Suite(.serialized) struct SessionSecrets {
  @Test func ansibleSecretsStayOutOfTheSessionFolderAndResumeStillWorks() throws {
    let env = try CaptureLab(hosts: 2, tag: "cz")
    let status = env.lab.status
    let smcpairAgent = (env.smcpair as NSString).deletingLastPathComponent + "/smcpair-agent"
    let secrets = [
      "Pw-ansible-9f3k", "Become-pw-7q2x", "SshPass-55aa", "BecomePass-31c7", "6661756c7463306666656531",
      "6661756c7463306666656532",
    ]
    var yaml = """
      all:
        vars:
          ansible_user: root
          ansible_password: \(secrets[0])
          ansible_become_password: \(secrets[1])
          ansible_ssh_pass: "\(secrets[2])"
          ansible_become_pass: '\(secrets[3])'
          vault_db_token: !vault |
            $ANSIBLE_VAULT;1.1;AES256
            \(secrets[4])
            \(secrets[5])
          ansible_ssh_private_key_file: \(status.identity)
          smcpair_known_hosts: \(status.known_hosts)
          smcpair_agent: \(smcpairAgent)
          smcpair_agent_root: \(env.agentRoot)
        children:
          smc:
            hosts:

      """
    for host in status.hosts {
      yaml += "        \(host.name):\n          ansible_host: \(host.address)\n"
      yaml += "          ansible_port: \(host.port)\n          smcpair_smc_dump: \(host.dump_device)\n"
    }
    let inventory = env.work.file("secret-hosts.yaml")
    try yaml.write(toFile: inventory, atomically: true, encoding: .utf8)
    // Started in the background, the coordinator killed mid-capture, then resumed: both
    // session.json writers (capture and resume) are covered.
    let process = try BackgroundProcess(
      [
        env.smcpair, "capture", "-i", inventory, "--client", "h1", "--server", "h2", "--duration", "120s",
        "--out", env.sessions,
      ], stdout: env.work.file("run.out"), stderr: env.work.file("run.err"))
    #expect(
      CaptureLab.waitFor("capturing on both sides", in: env.work.file("run.out"), seconds: 30),
      "\(env.runOutput)\n\(env.runErrors)")
    try env.blast()
    kill(process.pid, SIGKILL)
    _ = process.wait(seconds: 10)
    let folder = try #require(env.sessionFolders().first)
    let id = (folder as NSString).lastPathComponent
    let resumed = try Tools.run([env.smcpair, "sessions", "resume", id, "--out", env.sessions])
    #expect(resumed.status == 0, "\(resumed.stdout)\n\(resumed.stderr)")
    let record = try env.record(folder)
    #expect(record["state"] as? String == "complete")
    let snapshot = record.object("inventory")
    #expect(snapshot["text"] == nil, "the raw inventory text is not kept")
    #expect((snapshot["hosts"] as? String)?.contains("\"h2\"") == true, "\(snapshot)")
    // Every file of the session folder, captures included, byte by byte.
    let files = try #require(FileManager.default.subpaths(atPath: folder))
    #expect(files.contains("session.json") && files.contains("client.pcapng"), "\(files)")
    for name in files {
      guard let data = FileManager.default.contents(atPath: "\(folder)/\(name)") else { continue }
      for secret in secrets {
        #expect(data.range(of: Data(secret.utf8)) == nil, "\(name) holds the secret \(secret)")
      }
    }
    #expect(env.agentsGone().isEmpty, "agents left: \(env.agentProcesses())")
  }
}
