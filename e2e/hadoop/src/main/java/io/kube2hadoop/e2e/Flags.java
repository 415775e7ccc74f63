package io.kube2hadoop.e2e;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * "--name value" flags and positional arguments. Repeated flags keep every value in order, so
 * {@code --kind A --service a --kind B --service b} pairs up by index.
 */
final class Flags {
  private final Map<String, List<String>> values = new HashMap<>();
  private final List<String> positional = new ArrayList<>();

  static Flags parse(String[] args, int from) {
    Flags f = new Flags();
    for (int i = from; i < args.length; i++) {
      String a = args[i];
      if (a.startsWith("--")) {
        String name = a.substring(2);
        String value;
        int eq = name.indexOf('=');
        if (eq >= 0) {
          value = name.substring(eq + 1);
          name = name.substring(0, eq);
        } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
          value = args[++i];
        } else {
          value = "true"; // a bare switch such as --kms
        }
        f.values.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
      } else {
        f.positional.add(a);
      }
    }
    return f;
  }

  String get(String name, String dflt) {
    List<String> v = values.get(name);
    return v == null || v.isEmpty() ? dflt : v.get(v.size() - 1);
  }

  List<String> all(String name) {
    return values.getOrDefault(name, List.of());
  }

  boolean getBool(String name) {
    String v = get(name, "false");
    return switch (v) {
      case "true", "1", "yes" -> true;
      case "false", "0", "no" -> false;
      default -> throw new UsageException("flag --" + name + " is a switch, got '" + v + "'");
    };
  }

  long getLong(String name, long dflt) {
    String v = get(name, null);
    if (v == null) {
      return dflt;
    }
    try {
      return Long.parseLong(v);
    } catch (NumberFormatException e) {
      throw new UsageException("flag --" + name + " wants a whole number, got '" + v + "'");
    }
  }

  String positional(int i, String what) {
    if (i >= positional.size()) {
      throw new UsageException("missing argument: " + what);
    }
    return positional.get(i);
  }

  /** Bad command line: the message says what to fix; exit code 2. */
  static final class UsageException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    UsageException(String message) {
      super(message);
    }
  }
}
