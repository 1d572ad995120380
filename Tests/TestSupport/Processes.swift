import Foundation

/// The result of running an external program.
public struct ProcessResult: Sendable {
  public var status: Int32
  public var stdout: String
  public var stderr: String
  public var stdoutData: Data
}

public struct ToolMissing: Error, CustomStringConvertible {
  public var tool: String
  public var description: String {
    "\(tool) is not installed; run ./scripts/install-deps (tests never skip: CI must have every tool)"
  }
}

/// Runs external programs for tests (tshark, tcpdump, the built smcpair, ...).
public enum Tools {
  /// Absolute path of `name` on PATH, or throws `ToolMissing`: a missing prerequisite fails
  /// the test loudly instead of skipping it.
  public static func require(_ name: String) throws -> String {
    let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    for directory in paths.split(separator: ":") {
      let candidate = "\(directory)/\(name)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw ToolMissing(tool: name)
  }

  /// Runs `arguments[0]` (a path or a name on PATH) and waits for it.
  @discardableResult
  public static func run(_ arguments: [String], stdin: Data? = nil, environment: [String: String]? = nil)
    throws -> ProcessResult
  {
    let process = Process()
    let executable = arguments[0].hasPrefix("/") ? arguments[0] : try require(arguments[0])
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = Array(arguments.dropFirst())
    if let environment {
      process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let outPipe = Pipe()
    let errPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe
    let inPipe = Pipe()
    process.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
    try process.run()
    if let stdin {
      inPipe.fileHandleForWriting.write(stdin)
      try inPipe.fileHandleForWriting.close()
    }
    // Read both pipes concurrently so neither can fill up and stall the child.
    let group = DispatchGroup()
    nonisolated(unsafe) var errData = Data()
    group.enter()
    DispatchQueue.global().async {
      errData = errPipe.fileHandleForReading.readDataToEndOfFile()
      group.leave()
    }
    let outData = outPipe.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return ProcessResult(
      status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
      stderr: String(decoding: errData, as: UTF8.self), stdoutData: outData)
  }

  /// The package root (where Package.swift is), found from this source file.
  public static var packageRoot: String {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
      url.deleteLastPathComponent()
      if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        return url.path
      }
    }
    return FileManager.default.currentDirectoryPath
  }

  /// Path of a built product (`smcpair`, `smcpair-synth`), next to the running test bundle.
  public static func product(_ name: String) throws -> String {
    var candidates: [String] = []
    if let override = ProcessInfo.processInfo.environment["SMCPAIR_BIN_DIR"] {
      candidates.append("\(override)/\(name)")
    }
    let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    candidates.append("\(bundleDirectory)/\(name)")
    candidates.append("\(packageRoot)/.build/debug/\(name)")
    for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
      return candidate
    }
    throw ToolMissing(tool: "\(name) (build it with 'swift build'; looked in \(candidates))")
  }
}

/// A temporary directory removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {
  public let path: String

  public init(_ prefix: String = "smcpair-test") throws {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent(
      "\(prefix)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
    path = base.path
  }

  public func file(_ name: String) -> String { "\(path)/\(name)" }

  deinit { try? FileManager.default.removeItem(atPath: path) }
}
