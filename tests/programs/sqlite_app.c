/* SQLite through its C library (issue 11): creates a database in the job
 * directory, fills it in a transaction, queries it, and prints the answers.
 * Built against libsqlite3 dynamically and statically (libsqlite3.a). */
#include <sqlite3.h>
#include <stdio.h>

static int print_row(void *unused, int n, char **values, char **names) {
    (void)unused;
    for (int i = 0; i < n; i++)
        printf("%s=%s%s", names[i], values[i] ? values[i] : "NULL", i + 1 < n ? " " : "\n");
    return 0;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "app.db";
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        printf("open: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    char *err = NULL;
    const char *steps[] = {
        "drop table if exists t",
        "create table t(k integer primary key, g text, v real)",
        "begin",
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < 1000) "
        "insert into t(k, g, v) select i, char(97 + i % 4), i * 0.5 from n",
        "commit",
        "create index tg on t(g)",
    };
    for (unsigned i = 0; i < sizeof steps / sizeof *steps; i++)
        if (sqlite3_exec(db, steps[i], NULL, NULL, &err) != SQLITE_OK) {
            printf("step %u: %s\n", i, err);
            return 2;
        }
    sqlite3_exec(db, "select g, count(*) as n, sum(v) as total from t group by g order by g",
                 print_row, NULL, &err);
    sqlite3_exec(db, "pragma integrity_check", print_row, NULL, &err);
    sqlite3_close(db);
    return 0;
}
