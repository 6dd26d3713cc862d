// pgJDBC's DatabaseMetaData against meshgate, as DBeaver, DataGrip,
// Tableau and Metabase call it. Run by the Rust test
// `e2e::sql_sources::jdbc` (compiled with javac against Debian's
// libpostgresql-jdbc-java): one line per call, `<call> ok <rows> | ...`
// or `<call> FAIL <SQLSTATE> <message>`.
//
// Arguments: JDBC URL, user, password, schema, a table, a table whose
// foreign key references the first.
import java.sql.*;

public class MetaData {
    static void show(String name, ResultSet rs, String... cols) throws SQLException {
        int n = 0; StringBuilder first = new StringBuilder();
        while (rs.next()) {
            if (n < 3) { first.append(" |"); for (String c : cols) first.append(" ").append(c).append("=").append(rs.getString(c)); }
            n++;
        }
        System.out.println(name + " ok " + n + first);
    }
    interface Call { void run() throws SQLException; }
    static void attempt(String name, Call c) {
        try { c.run(); } catch (SQLException e) { System.out.println(name + " FAIL " + e.getSQLState() + " " + e.getMessage().replace('\n', ' ')); }
    }
    public static void main(String[] a) throws Exception {
        Connection conn = DriverManager.getConnection(a[0], a[1], a[2]);
        String schema = a[3], table = a[4], other = a[5];
        DatabaseMetaData md = conn.getMetaData();
        attempt("getTables", () -> show("getTables", md.getTables(null, schema, "%", new String[] {"TABLE", "VIEW"}), "TABLE_NAME"));
        attempt("getColumns", () -> show("getColumns", md.getColumns(null, schema, table, "%"), "COLUMN_NAME", "TYPE_NAME"));
        attempt("getPrimaryKeys", () -> show("getPrimaryKeys", md.getPrimaryKeys(null, schema, table), "COLUMN_NAME", "PK_NAME"));
        attempt("getImportedKeys", () -> show("getImportedKeys", md.getImportedKeys(null, schema, other), "PKTABLE_NAME", "PKCOLUMN_NAME", "FKCOLUMN_NAME"));
        attempt("getExportedKeys", () -> show("getExportedKeys", md.getExportedKeys(null, schema, table), "FKTABLE_NAME", "FKCOLUMN_NAME"));
        attempt("getIndexInfo", () -> show("getIndexInfo", md.getIndexInfo(null, schema, table, false, true), "INDEX_NAME", "COLUMN_NAME"));
        attempt("getFunctions", () -> show("getFunctions", md.getFunctions(null, "pg_catalog", "abs"), "FUNCTION_NAME"));
        attempt("getTablePrivileges", () -> show("getTablePrivileges", md.getTablePrivileges(null, schema, table), "GRANTEE", "PRIVILEGE"));
        attempt("getColumnPrivileges", () -> show("getColumnPrivileges", md.getColumnPrivileges(null, schema, table, "%"), "COLUMN_NAME", "PRIVILEGE"));
        attempt("getTableName", () -> {
            ResultSet rs = conn.createStatement().executeQuery(
                "SELECT name AS who, id + 1 AS next_id FROM " + schema + "." + table);
            org.postgresql.PGResultSetMetaData m = (org.postgresql.PGResultSetMetaData) rs.getMetaData();
            System.out.println("getTableName ok 2 | " + rs.getMetaData().getTableName(1) + " "
                + m.getBaseSchemaName(1) + " " + m.getBaseColumnName(1) + " | ["
                + rs.getMetaData().getTableName(2) + "]");
        });
        conn.close();
    }
}
