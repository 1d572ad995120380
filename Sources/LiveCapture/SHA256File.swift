import Checksum

/// SHA-256 of a file, for callers that do not import Checksum.
public enum SHA256File {
  public static func digest(_ path: String) -> String? { SHA256.file(path) }
}
