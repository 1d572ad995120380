import ArgumentParser
import Foundation
import SSHTransport
import Support

struct CopyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "copy",
    abstract: "Copy a file from or to a host over SFTP, verified by SHA-256.",
    discussion: """
      Downloads are pipelined, written to LOCAL.partial first, resumed when run again after an \
      interruption, and checked against the host's sha256sum before LOCAL appears. From 32 MiB \
      on, a second connection to the host fetches part of the file when it logs in without a \
      prompt. Uploads are \
      written under a temporary name and renamed when complete.

      Examples:
        smcpair copy ssh://root@10.0.0.5/var/lib/smcpair/agent/sessions/s1/capture-0001.pcapng ./client.pcapng
        smcpair copy ./smcpair-agent ssh://root@10.0.0.5/usr/local/bin/smcpair-agent --mode 755
      """)

  @OptionGroup var connection: ConnectionOptions
  @Argument(help: "Source: a local path or ssh://[user@]host[:port]/PATH.") var source: String
  @Argument(help: "Destination: a local path or ssh://[user@]host[:port]/PATH.") var destination: String
  @Option(help: "Mode of an uploaded file (octal).") var mode = "644"
  @Option(
    help: ArgumentHelp(
      "Expected SHA-256 of a download (else the host's sha256sum is asked).", valueName: "hex"))
  var expectSHA256: String?

  func validate() throws {
    let remoteSource = source.hasPrefix("ssh://")
    let remoteDestination = destination.hasPrefix("ssh://")
    guard remoteSource != remoteDestination else {
      throw ValidationError("exactly one of SOURCE and DESTINATION must be ssh://[user@]host[:port]/PATH")
    }
    guard let remote = SSHTarget.parse(url: remoteSource ? source : destination), let path = remote.path,
      path.count > 1
    else {
      throw ValidationError("the remote side needs a path: ssh://[user@]host[:port]/PATH")
    }
    guard Int(mode, radix: 8) != nil else { throw ValidationError("--mode is octal, e.g. 644") }
    if let expectSHA256, expectSHA256.count != 64 || UInt64(expectSHA256.prefix(16), radix: 16) == nil {
      throw ValidationError("--expect-sha256 takes 64 hex digits")
    }
  }

  func run() throws {
    let remoteSource = source.hasPrefix("ssh://")
    let remote = SSHTarget.parse(url: remoteSource ? source : destination)!
    let (target, options) = try connection.resolve("ssh://\(remote.description)", inventory: nil)
    let showProgress = isatty(2) == 1
    var lastShown = Date.distantPast
    let progress: TransferProgress = { done, total in
      if showProgress && Date().timeIntervalSince(lastShown) > 0.2 {
        lastShown = Date()
        let percent = total > 0 ? Double(done) * 100 / Double(total) : 100
        writeStandardError(String(format: "\r%6.1f%%  %d / %d bytes", percent, done, total))
      }
      return true
    }
    do throws(SSHError) {
      let session = try SSHSession.connect(target, options: options)
      defer { session.close() }
      let result: TransferResult
      if remoteSource {
        var local = destination
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: local, isDirectory: &isDirectory), isDirectory.boolValue {
          local += "/" + (remote.path! as NSString).lastPathComponent
        }
        result = try session.download(
          remote.path!, to: local, expectedSHA256: expectSHA256?.lowercased(), progress: progress)
      } else {
        result = try session.upload(source, to: remote.path!, mode: Int(mode, radix: 8)!, progress: progress)
      }
      if showProgress { writeStandardError("\n") }
      let rate = Double(result.bytes - result.resumedFrom) / max(result.seconds, 1e-6) / 1_048_576
      print(
        "\(result.bytes) bytes\(result.resumedFrom > 0 ? " (resumed at \(result.resumedFrom))" : "") in \(String(format: "%.2f", result.seconds)) s (\(String(format: "%.1f", rate)) MiB/s\(result.connections > 1 ? ", \(result.connections) connections" : "")), sha256 \(result.sha256)"
      )
    } catch {
      if showProgress { writeStandardError("\n") }
      writeStandardError("smcpair copy: \(error.description)\n")
      throw ExitCode(1)
    }
  }
}
