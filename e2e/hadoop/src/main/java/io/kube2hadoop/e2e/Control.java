package io.kube2hadoop.e2e;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

/**
 * Fault injection for the e2e fault tests: a loopback HTTP port (recorded in cluster.json as
 * "control") on which {@code POST /namenode/stop?index=N} and {@code POST /namenode/start?index=N}
 * stop and restart a NameNode on the same ports. Answers when done: 200 "ok ..." or 500 with the
 * reason. One request at a time, so a stop and a start cannot interleave.
 */
final class Control implements AutoCloseable {
  private final HttpServer server;
  private final SecureHdfs hdfs;

  private Control(HttpServer server, SecureHdfs hdfs) {
    this.server = server;
    this.hdfs = hdfs;
  }

  static Control start(SecureHdfs hdfs) throws IOException {
    HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    Control c = new Control(server, hdfs);
    server.createContext("/namenode/", c::handle);
    server.setExecutor(Executors.newSingleThreadExecutor());
    server.start();
    return c;
  }

  String url() {
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  private void handle(HttpExchange ex) throws IOException {
    int status = 200;
    String body;
    try {
      if (!"POST".equals(ex.getRequestMethod())) {
        throw new IllegalArgumentException("use POST");
      }
      int index = index(ex.getRequestURI().getQuery());
      String path = ex.getRequestURI().getPath();
      switch (path) {
        case "/namenode/stop" -> hdfs.stopNameNode(index);
        case "/namenode/start" -> hdfs.startNameNode(index);
        default -> throw new IllegalArgumentException("unknown command " + path + "; want /namenode/stop or /namenode/start");
      }
      body = "ok " + path + " " + index + "\n";
      System.err.println("harness: control: " + body.trim());
    } catch (Exception e) {
      status = e instanceof IllegalArgumentException ? 400 : 500;
      body = "error: " + e + "\n";
      System.err.println("harness: control failed: " + e);
    }
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    ex.sendResponseHeaders(status, bytes.length);
    try (OutputStream out = ex.getResponseBody()) {
      out.write(bytes);
    }
  }

  private static int index(String query) {
    if (query == null || query.isEmpty()) {
      return 0;
    }
    for (String kv : query.split("&")) {
      if (kv.startsWith("index=")) {
        try {
          return Integer.parseInt(kv.substring(6));
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("index wants a number, got " + kv);
        }
      }
    }
    return 0;
  }

  @Override
  public void close() {
    server.stop(0);
  }
}
