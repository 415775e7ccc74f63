package io.kube2hadoop.e2e;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;

/**
 * Writes cluster.json, the contract between this bed and the Rust tests. Keys are stable; add new
 * ones rather than renaming. Written to a temp file and renamed so readers never see half of it.
 */
final class ClusterJson {
  private ClusterJson() {}

  static void write(File out, SecureKdc kdc, SecureHdfs hdfs, SecureKms kms, SecureYarn yarn, SecureRouter router, File routerConfDir, SecureHive hive, SecureHdfs.TokenTimes times, File confDir, File auditLog, File classpathFile,
      String controlUrl, File podConfDir, String podGateway)
      throws IOException {
    StringBuilder b = new StringBuilder();
    b.append("{\n");
    field(b, "realm", SecureKdc.REALM);
    field(b, "kdc", "127.0.0.1:" + kdc.port());
    field(b, "krb5_conf", kdc.krb5Conf.getAbsolutePath());
    field(b, "service_principal", SecureKdc.principal(SecureKdc.SERVICE));
    field(b, "service_keytab", kdc.keytab("kube2hadoop").getAbsolutePath());
    field(b, "spnego_principal", SecureKdc.principal(SecureKdc.SPNEGO));
    field(b, "hdfs_principal", SecureKdc.principal(SecureKdc.HDFS));
    b.append("  \"users\": {");
    String sep = "\n";
    for (String u : SecureKdc.USERS) {
      b.append(sep).append("    ").append(str(u)).append(": {\"principal\": ").append(str(SecureKdc.principal(u)))
          .append(", \"keytab\": ").append(str(kdc.keytab(u).getAbsolutePath())).append("}");
      sep = ",\n";
    }
    b.append("\n  },\n");
    b.append("  \"nameservices\": [");
    sep = "\n";
    for (SecureHdfs.NameNode nn : hdfs.nameNodes) {
      // MiniDFSCluster has no HA here: one NameNode per nameservice.
      b.append(sep).append("    {\"name\": ").append(nn.nameservice() == null ? "null" : str(nn.nameservice()))
          .append(", \"namenodes\": [{\"rpc\": ").append(str(nn.rpcHostPort()))
          .append(", \"http\": ").append(str(nn.httpUrl())).append("}]}");
      sep = ",\n";
    }
    b.append("\n  ],\n");
    b.append("  \"kms\": [");
    if (kms != null) {
      b.append("{\"uri\": ").append(str(kms.providerUri().toString()))
          .append(", \"http\": ").append(str(kms.url.toString()))
          .append(", \"key\": ").append(str(SecureKms.KEY_NAME)).append("}");
    }
    b.append("],\n");
    b.append("  \"yarn\": ");
    if (yarn == null) {
      b.append("null");
    } else {
      // One RM (no HA); the list and its id leave room for an HA pair.
      b.append("{\"principal\": ").append(str(SecureKdc.principal(SecureKdc.RM)))
          .append(", \"resourcemanagers\": [{\"id\": ").append(str(SecureYarn.RM_ID))
          .append(", \"rpc\": ").append(str(yarn.rpcHostPort()))
          .append(", \"http\": ").append(str(yarn.httpUrl())).append("}]")
          .append(", \"token_service\": ").append(str(yarn.tokenService())).append("}");
    }
    b.append(",\n");
    b.append("  \"router\": ");
    if (router == null) {
      b.append("null");
    } else {
      b.append("{\"nameservice\": ").append(str(SecureRouter.NAMESERVICE))
          .append(", \"rpc\": ").append(str(router.rpcHostPort()))
          .append(", \"http\": ").append(str(router.httpUrl()))
          .append(", \"principal\": ").append(str(SecureKdc.principal(SecureKdc.HDFS)))
          .append(", \"token_service\": ").append(str(router.tokenService()))
          .append(", \"mounts\": {");
      String msep = "";
      for (var m : router.mounts.entrySet()) {
        b.append(msep).append(str(m.getKey())).append(": ").append(str(m.getValue()));
        msep = ", ";
      }
      b.append("}, \"paths\": [");
      msep = "";
      for (String p : router.paths) {
        b.append(msep).append(str(p));
        msep = ", ";
      }
      b.append("]}");
    }
    b.append(",\n");
    b.append("  \"hive\": ");
    if (hive == null) {
      b.append("null");
    } else {
      b.append("{\"uri\": ").append(str(hive.uri()))
          .append(", \"principal\": ").append(str(SecureKdc.principal(SecureHive.PRINCIPAL)))
          .append(", \"keytab\": ").append(str(kdc.keytab("hive").getAbsolutePath()))
          .append(", \"token_signature\": ").append(str(SecureHive.TOKEN_SIGNATURE))
          .append(", \"conf_dir\": ").append(str(hive.confDir.getAbsolutePath()))
          .append(", \"log\": ").append(str(hive.log.getAbsolutePath()))
          .append(", \"audit_log\": ").append(str(hive.audit.getAbsolutePath()))
          .append(", \"pid\": ").append(hive.pid()).append("}");
    }
    b.append(",\n");
    if (routerConfDir != null) {
      field(b, "router_conf_dir", routerConfDir.getAbsolutePath());
    }
    field(b, "hadoop_conf_dir", confDir.getAbsolutePath());
    field(b, "audit_log", auditLog.getAbsolutePath());
    if (podConfDir != null) {
      // For pods on the real node: their client config, the NameNode as they reach it, and the
      // name their hostAliases must map to the gateway.
      field(b, "pod_hadoop_conf_dir", podConfDir.getAbsolutePath());
      field(b, "pod_namenode_rpc", podGateway + ":" + hdfs.nameNodes.get(0).rpc().getPort());
      field(b, "pod_datanode_hostname", SecureHdfs.POD_DATANODE_HOSTNAME);
      // For a token service running as a pod: the KDC and the NameNode's web endpoint as pods
      // reach them (pod_hadoop_hostname mapped to the gateway by the pod's hostAliases).
      field(b, "pod_hadoop_hostname", SecureKdc.POD_HOSTNAME);
      field(b, "pod_kdc", podGateway + ":" + kdc.port());
      field(b, "pod_namenode_http",
          "http://" + SecureKdc.POD_HOSTNAME + ":" + hdfs.nameNodes.get(0).http().getPort());
    }
    b.append("  \"renew_interval_ms\": ").append(times.renewIntervalMs()).append(",\n");
    b.append("  \"max_lifetime_ms\": ").append(times.maxLifetimeMs()).append(",\n");
    b.append("  \"key_update_interval_ms\": ").append(times.keyUpdateIntervalMs()).append(",\n");
    b.append("  \"java_classpath_file\": ").append(str(classpathFile.getAbsolutePath())).append(",\n");
    b.append("  \"control\": ").append(str(controlUrl)).append("\n");
    b.append("}\n");
    File tmp = new File(out.getParentFile(), out.getName() + ".tmp");
    Files.writeString(tmp.toPath(), b, StandardCharsets.UTF_8);
    Files.move(tmp.toPath(), out.toPath(), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }

  private static void field(StringBuilder b, String key, String value) {
    b.append("  ").append(str(key)).append(": ").append(str(value)).append(",\n");
  }

  static String str(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }
}
