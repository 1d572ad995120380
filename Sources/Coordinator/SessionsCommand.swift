import ArgumentParser
import Foundation
import Orchestration
import Support

struct SessionsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sessions", abstract: "List capture sessions, and recover one whose smcpair went away.",
    subcommands: [SessionsList.self, SessionsResume.self, SessionsClean.self])

  /// A session id names a folder under --out: no path.
  static func validateID(_ id: String) throws {
    guard !id.contains("/"), !id.isEmpty, id != ".", id != ".." else {
      throw ValidationError("'\(id)' is not a session id; see smcpair sessions list")
    }
  }
}

struct SessionsList: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list", abstract: "The session folders under --out, oldest first, with their state.")

  @Option(help: "Folder holding the session folders.") var out = "smcpair-sessions"

  func run() throws {
    let sessions = SessionRecord.list(out)
    if sessions.isEmpty {
      print("no sessions in \(out)")
      return
    }
    for session in sessions {
      print("\(session.id)  \(session.state)  pair \(session.pair)  created \(session.created)")
    }
  }
}

struct SessionsResume: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "resume",
    abstract: "Reattach to both agents of a session, stop and finalize them, pull and merge.",
    discussion: """
      For a session whose smcpair was killed or lost contact while capturing (state 'capturing' \
      or 'stopping' in 'smcpair sessions list'). The agents kept capturing until their own stop \
      condition; resume stops them now if they are still running ('smcpair-agent attach'), or \
      reads the finished session from the agent's folder. The hosts come from the inventory \
      snapshot in session.json.

      Example:
        smcpair sessions resume 20261126T191051Z-pair1 --out smcpair-sessions
      """)

  @OptionGroup var connection: ConnectionOptions
  @Argument(help: "The session id (its folder name).") var id: String
  @Option(help: "Folder holding the session folders.") var out = "smcpair-sessions"
  @Option(help: "The agent binary (its digest is recorded; nothing is deployed on resume).")
  var agentBinary: String?
  @Flag(help: "One JSON summary on standard output.") var json = false

  func validate() throws { try SessionsCommand.validateID(id) }

  func run() throws {
    let folder = "\(out)/\(id)"
    let display = CaptureDisplay(json: json, quiet: false)
    do {
      let options = CaptureOptions(
        agent: try LocalAgent(path: agentBinary ?? siblingExecutable("smcpair-agent")))
      let run = try CaptureRun(
        resuming: folder, ssh: connection.baseOptions(), knownHostsOverride: connection.knownHosts,
        options: options, events: display.events)
      let status = run.resume()
      display.summary(run, status: status)
      if status != 0 { throw ExitCode(status) }
    } catch let failure as CaptureFailure {
      writeStandardError("smcpair sessions resume: \(failure.description)\n")
      throw ExitCode(1)
    }
  }
}

struct SessionsClean: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "clean",
    abstract:
      "Remove a session's capture files from its hosts (kept with --keep-remote, or left by a failed pull).",
    discussion: """
      A capture removes each host's copy once it pulled the files and checked their SHA-256; \
      'smcpair capture --keep-remote' keeps them, and a pull that failed leaves them. This asks \
      each host's agent to delete the session's folder ('smcpair-agent remove'), which it \
      refuses while an agent still captures into it. The local session folder is not touched.

      Example:
        smcpair sessions clean 20261126T191051Z-pair1 --out smcpair-sessions
      """)

  @OptionGroup var connection: ConnectionOptions
  @Argument(help: "The session id (its folder name).") var id: String
  @Option(help: "Folder holding the session folders.") var out = "smcpair-sessions"

  func validate() throws { try SessionsCommand.validateID(id) }

  func run() throws {
    let folder = "\(out)/\(id)"
    let display = CaptureDisplay(json: false, quiet: true)
    do {
      let options = CaptureOptions(agent: try LocalAgent(path: siblingExecutable("smcpair-agent")))
      let run = try CaptureRun(
        resuming: folder, ssh: connection.baseOptions(), knownHostsOverride: connection.knownHosts,
        options: options, events: display.events)
      let results = run.cleanRemote()
      for (host, outcome) in results { print("\(host): \(outcome)") }
      if results.contains(where: { $0.1 != "removed" }) { throw ExitCode(2) }
    } catch let failure as CaptureFailure {
      writeStandardError("smcpair sessions clean: \(failure.description)\n")
      throw ExitCode(1)
    }
  }
}
