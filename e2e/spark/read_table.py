"""Reads a Hive table with PySpark (enableHiveSupport) and prints its rows, one per line.

    read_table.py DB.TABLE [--conf KEY=VALUE]...

e2e/scripts/pyspark-hive.sh runs it with the bed's metastore and Hadoop settings; the process
authenticates only with the tokens of HADOOP_TOKEN_FILE_LOCATION. Prints "user\tNAME" (whom
Hadoop's UGI says this process is, with its token count), "table\tDB.TABLE\tcolumns=..." and
"row\t<values, tab-separated>" for each row; on failure the error's Java class and message
lines on stderr ("error: ...") and exit 1.
"""

import sys
import traceback

from pyspark.sql import SparkSession


def java_exception(e):
    """The Java exception behind a Python one: Py4JJavaError carries it as java_exception,
    PySpark's converted errors (AnalysisException, ...) as _origin. When the metastore client
    fails, PySpark's own conversion can fail in turn (py4j looks its helper class up through the
    thread's context class loader, which Spark's isolated Hive loader may have left set): the
    Py4JJavaError is then this error's context."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        java = getattr(e, "java_exception", None) or getattr(e, "_origin", None)
        if java is not None:
            return java
        e = e.__cause__ or e.__context__
    return None


def main(argv):
    args = argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    table, confs = args[0], []
    rest = args[1:]
    while rest:
        if rest[0] != "--conf" or len(rest) < 2 or "=" not in rest[1]:
            print(__doc__, file=sys.stderr)
            return 2
        confs.append(rest[1].split("=", 1))
        rest = rest[2:]

    builder = SparkSession.builder.appName("k2h-read-table").master("local[1]")
    for key, value in confs:
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    try:
        jvm = spark.sparkContext._jvm
        ugi = jvm.org.apache.hadoop.security.UserGroupInformation.getCurrentUser()
        print(f"user\t{ugi.getUserName()}\ttokens={ugi.getCredentials().numberOfTokens()}", flush=True)
        df = spark.sql(f"SELECT * FROM {table}")
        print(f"table\t{table}\tcolumns={','.join(df.columns)}", flush=True)
        for row in df.collect():
            print("row\t" + "\t".join("" if v is None else str(v) for v in row), flush=True)
        return 0
    except Exception as e:  # noqa: BLE001 - the error's text is what the caller checks
        java = java_exception(e)
        lines = []
        cause = java
        while cause is not None and len(lines) < 20:
            lines.append(f"error: {cause.getClass().getName()}: {str(cause.getMessage()).strip()}")
            nxt = cause.getCause()
            cause = None if nxt is None or nxt.equals(cause) else nxt
        if not lines:
            traceback.print_exc()
            lines.append(f"error: {type(e).__name__}: {e}")
        print("\n".join(lines), file=sys.stderr, flush=True)
        return 1
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
