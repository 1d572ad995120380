import Alignment
import ArgumentParser
import CaptureFiles
import Foundation
import MergePipeline
import SMCWire
import SSHTransport
import Support

struct MergeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "merge",
    abstract: "Align the clocks of a client and a server capture and merge them onto one time axis.",
    discussion: """
      Packets seen on both sides (TCP segments, CDC records, data records) bound the clock offset \
      from both directions; the offset and skew are chosen inside the feasible set, with bounds. \
      A clock step inside the captures splits the alignment into segments. See docs/alignment.md.

      Writes into --out: alignment.json (always), merged.pcapng (one interface per side and \
      interface, the same packet id on both copies of a paired packet, delays in comments), \
      timeline.jsonl (one paired message per line, then the findings), timeline.html (a ladder \
      diagram in one self-contained file), report.md.

      Both captures are paired while they are read, keeping only the packets still waiting for \
      their copy (--pairing-window), and every output is written from files of notes, so memory \
      stays flat however large the captures; if that cannot be trusted to find every pair (a \
      clock step, a copy later than the window, a direction that cannot be told), smcpair says \
      why and pairs in memory. --pair-in-memory does that from the start (a cross-check).

      Which side sent each shared packet is decided from the captures, never from host names: \
      first the directions the capturing hosts recorded (smcpair-agent's pcapng flags, the \
      packet type of tcpdump -i any captures), then timing (only one way round are all \
      receives after their sends), then the handshake (SYN and CLC Proposal senders are the \
      client's). When nothing decides, the verdict is "cannot tell" and no bounds are given.

      Every output is written under a temporary name (.smcpair-PID-NAME.tmp) and renamed when \
      complete, alignment.json last: a merge that is stopped leaves no partial file under a final \
      name, and the next merge into the folder removes what a killed one left. The folder is \
      created 0700 and every output is 0600 (packet data), whatever the umask.

      Exit status (sysexits): 0 merged and aligned; 3 merged but not aligned (the captures \
      share no packet, or no shared packet's direction can be told: verdict "none" or \
      "cannot-tell"); 64 usage; 65 bad input data: a capture is not a capture or is damaged, \
      or the inputs are refused before merging (the same capture twice, or client and server \
      captures that look swapped); 66 a capture cannot be opened (missing, not a regular file \
      such as a pipe or FIFO, no permission); 73 an output cannot be created or written \
      (--out is an existing file, a read-only folder, a full disk).

      Example:
        smcpair merge client.pcapng server.pcapng --out merged/ --client-name h1 --server-name h2
      """)

  @Argument(help: "The client side's capture (pcap or pcapng).") var client: String
  @Argument(help: "The server side's capture.") var server: String
  @Option(help: "Output folder (created).") var out: String
  @Option(help: "Name of the client host in interface names.") var clientName = "client"
  @Option(help: "Name of the server host in interface names.") var serverName = "server"
  @Option(help: "Outputs: any of pcapng,jsonl,html,report (alignment.json is always written).")
  var formats = "pcapng,jsonl,html,report"
  @Option(help: "Clock the merged timeline uses: client or server.") var reference = "client"
  @Option(
    help: ArgumentHelp(
      "An address of the client host, overriding what the captures say (repeatable; an address in no shared packet is reported and not used).",
      valueName: "ip"))
  var clientAddress: [String] = []
  @Option(
    help: ArgumentHelp(
      "How long a packet waits for its copy from the other side (seconds).",
      valueName: "seconds"))
  var pairingWindow = 2.0
  @Flag(help: "Pair in memory instead of within the pairing window (memory grows with the captures).")
  var pairInMemory = false

  func validate() throws {
    do {
      _ = try MergeFormats(parsing: formats)
    } catch {
      throw ValidationError(error.description)
    }
    guard Side(rawValue: reference) != nil else {
      throw ValidationError("--reference is client or server")
    }
    guard pairingWindow.isFinite, pairingWindow > 0, pairingWindow <= 3600 else {
      throw ValidationError("--pairing-window is a number of seconds above 0 and at most 3600")
    }
    for address in clientAddress where IPAddress(address) == nil {
      throw ValidationError("--client-address '\(address)' is not an IP address")
    }
  }

  func run() throws {
    let addresses = Set(clientAddress.compactMap(IPAddress.init))
    TemporaryFiles.installSignalCleanup()
    do {
      let result = try MergeRun.run(
        client: client, server: server, out: out, clientName: clientName, serverName: serverName,
        formats: try MergeFormats(parsing: formats),
        reference: Side(rawValue: reference) ?? .client,
        clientAddresses: addresses, window: Int64(pairingWindow * 1e9), inMemory: pairInMemory)
      print(result.report)
      if !result.aligned { throw ExitCode(3) }
    } catch let refusal as MergeRun.Refusal {
      writeStandardError("smcpair merge: \(refusal)\n")
      throw ExitCode(65)
    } catch let folder as MergeRun.OutputFolderError {
      writeStandardError("smcpair merge: \(folder)\n")
      throw ExitCode(73)
    } catch let exit as ExitCode {
      throw exit
    } catch let failure as CaptureFileError {
      writeStandardError("smcpair merge: \(failure)\n")
      if failure.code == .truncated { writeStandardError(Self.intactCopyHint(failure)) }
      throw ExitCode(Self.exitStatus(failure, inputs: [client, server]))
    } catch {
      writeStandardError("smcpair merge: \(error)\n")
      throw ExitCode(1)
    }
  }

  /// sysexits: 66 an input cannot be opened, 65 an input is not a capture or is damaged,
  /// 73 an output cannot be written.
  static func exitStatus(_ failure: CaptureFileError, inputs: [String]) -> Int32 {
    guard inputs.contains(failure.path) else { return 73 }
    return failure.code == .io ? 66 : 65
  }

  /// For a capture cut off mid-block: how to merge the packets before the cut.
  static func intactCopyHint(_ error: CaptureFileError) -> String {
    let path = error.path
    let base =
      path.hasSuffix(".pcapng") || path.hasSuffix(".pcap") ? (path as NSString).deletingPathExtension : path
    let copy = base + "-intact.pcapng"
    return
      "  the \(error.salvagedPackets) packets before the cut are intact: copy them with editcap, which stops at the cut, and merge the copy:\n    editcap -F pcapng \(RemoteCommand.quote(path)) \(RemoteCommand.quote(copy))\n"
  }
}
