#!/usr/bin/env bash
# Database servers configured as they are in AWS, for the tests that need a password and
# TLS: a second PostgreSQL cluster (initdb under target/ci-tools/pg-tls, a free port,
# scram-sha-256 and hostssl only, a CA and a server certificate made by openssl, a role
# with a password), a MariaDB user with a password on the shared server, and a second
# MariaDB server that takes only TLS (mariadb-install-db under target/ci-tools/mariadb-tls,
# its own datadir, port and socket, the same CA). Idempotent: a rerun reuses the servers,
# their ports, certificates and password, and starts a stopped one.
# Writes target/ci-tools/services.env (`export` lines) for the tests to source.
# Needs root (it runs the servers as the `postgres` and `mysql` OS users) and the MariaDB
# of .ci/run answering on 127.0.0.1:3306 as root without a password.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/target/ci-tools"
dir="$tools/pg-tls"
data="$dir/data"
run="$dir/run" # the socket and the log: written by postgres
pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
as_pg() { runuser -u postgres -- "$@"; }

mkdir -p "$dir"
install -d -o postgres -m 755 "$run"
# The postgres user must reach its files through target/: search permission on the path.
for d in "$PWD/target" "$tools" "$dir"; do chmod o+x "$d"; done

# --- Certificates: a CA, a server certificate for localhost and 127.0.0.1, and an
# unrelated CA that must be refused.
if [ ! -s "$dir/server.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=A2A test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=A2A unrelated CA" \
    -keyout "$dir/other-ca.key" -out "$dir/other-ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 3650 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
fi
chown postgres "$dir/server.key" "$dir/server.crt"
chmod 600 "$dir/server.key"
chmod 644 "$dir/ca.pem" "$dir/other-ca.pem" "$dir/server.crt"

# --- The role's password, made once.
if [ ! -s "$dir/password" ]; then
  (umask 077; openssl rand -hex 16 >"$dir/password")
fi
password="$(cat "$dir/password")"

# --- The cluster.
if [ ! -s "$data/PG_VERSION" ]; then
  rm -rf "$data"
  install -d -o postgres -m 700 "$data"
  as_pg "$pgbin/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=reject \
    --encoding=UTF8 --no-locale >/dev/null
fi
if ! as_pg "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$data/postgresql.auto.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$run'
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '$dir/server.crt'
ssl_key_file = '$dir/server.key'
max_connections = 100
EOF
  cat >"$data/pg_hba.conf" <<EOF
# Local admin through the socket; over TCP, TLS and a SCRAM password or nothing.
local   all  postgres                peer
hostssl all  all       127.0.0.1/32  scram-sha-256
EOF
  chown postgres "$data/postgresql.auto.conf" "$data/pg_hba.conf"
  as_pg "$pgbin/pg_ctl" -D "$data" -l "$run/server.log" -w -t 60 start >/dev/null
fi
port="$(sed -n "s/^port = //p" "$data/postgresql.auto.conf")"
psql_admin() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$run" -p "$port" -U postgres -d postgres "$@"; }
psql_admin -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'a2a_tls') THEN
    CREATE ROLE a2a_tls LOGIN CREATEDB;
  END IF;
END \$\$;"
psql_admin -c "ALTER ROLE a2a_tls PASSWORD '$password'"
if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'")" ]; then
  psql_admin -c "CREATE DATABASE test OWNER a2a_tls"
fi

# --- MariaDB: a user with a password (the shared server of .ci/run).
my() { mariadb -h 127.0.0.1 -u root --batch --skip-column-names "$@"; }
for host in "'%'" "'localhost'" "'127.0.0.1'"; do
  my -e "CREATE USER IF NOT EXISTS 'a2a_pw'@$host IDENTIFIED BY '$password';
         ALTER USER 'a2a_pw'@$host IDENTIFIED BY '$password';
         GRANT ALL PRIVILEGES ON *.* TO 'a2a_pw'@$host;"
done
my -e "CREATE DATABASE IF NOT EXISTS test"
# A user that must come over TLS, when this MariaDB speaks TLS at all (Debian's package
# starts with have_ssl=DISABLED: TLS needs certificates in its configuration and a restart,
# which a shared server does not get here).
have_ssl="$(my -e "SELECT @@have_ssl")"
mysql_ssl_url=""
if [ "$have_ssl" = "YES" ]; then
  my -e "CREATE USER IF NOT EXISTS 'a2a_ssl'@'%' IDENTIFIED BY '$password' REQUIRE SSL;
         ALTER USER 'a2a_ssl'@'%' IDENTIFIED BY '$password' REQUIRE SSL;
         GRANT ALL PRIVILEGES ON *.* TO 'a2a_ssl'@'%';"
  mysql_ssl_url="mysql://a2a_ssl:$password@127.0.0.1:3306/test?ssl-mode=REQUIRED"
else
  echo "tls-servers: the shared MariaDB has have_ssl=$have_ssl: no REQUIRE SSL user made" >&2
fi

# --- A second MariaDB that takes only TLS, with the server certificate of the same CA (the
# shared one runs with have_ssl=DISABLED, and a shared server does not get restarted). It
# takes no LOAD DATA LOCAL INFILE either, as MySQL 8 by default: loads into it go through
# multi-row INSERTs (shared/dbmove/tests/tls.rs).
mdir="$tools/mariadb-tls"
mdata="$mdir/data"
msock="$mdir/mariadbd.sock"
install -d -o mysql -m 755 "$mdir"
install -o mysql -m 600 "$dir/server.key" "$mdir/server.key"
install -o mysql -m 644 "$dir/server.crt" "$mdir/server.crt"
install -o mysql -m 644 "$dir/ca.pem" "$mdir/ca.pem"
if [ ! -d "$mdata/mysql" ]; then
  rm -rf "$mdata"
  install -d -o mysql -m 700 "$mdata"
  mariadb-install-db --no-defaults --user=mysql --datadir="$mdata" \
    --auth-root-authentication-method=socket --skip-test-db >"$mdir/install.log" 2>&1
fi
mping() { mariadb-admin --no-defaults --socket="$msock" -u root ping --silent >/dev/null 2>&1; }
if ! mping; then
  mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$mport" >"$mdir/port"
  # Matched by its own pid file: the shared server runs the same binary.
  start-stop-daemon --start --background --pidfile "$mdir/mariadbd.pid" \
    --exec /usr/sbin/mariadbd -- --no-defaults \
    --user=mysql --datadir="$mdata" --socket="$msock" --port="$mport" \
    --bind-address=127.0.0.1 --pid-file="$mdir/mariadbd.pid" --log-error="$mdir/error.log" \
    --skip-name-resolve --ssl-ca="$mdir/ca.pem" --ssl-cert="$mdir/server.crt" \
    --ssl-key="$mdir/server.key" --require-secure-transport=ON --local-infile=0
  for _ in $(seq 1 120); do mping && break; sleep 0.5; done
  mping || { echo "tls-servers: the TLS MariaDB did not start; see $mdir/error.log" >&2; exit 1; }
fi
mport="$(cat "$mdir/port")"
mtls() { mariadb --no-defaults --socket="$msock" -u root --batch --skip-column-names "$@"; }
mtls -e "SET GLOBAL local_infile = 0;
         CREATE USER IF NOT EXISTS 'a2a_tls'@'%' IDENTIFIED BY '$password';
         ALTER USER 'a2a_tls'@'%' IDENTIFIED BY '$password';
         GRANT ALL PRIVILEGES ON *.* TO 'a2a_tls'@'%';
         CREATE DATABASE IF NOT EXISTS test;"

# --- What the tests read.
env_file="$tools/services.env"
{
  echo "# Written by .ci/tls-servers.sh."
  echo "export A2A_TEST_PG_TLS_URL='postgres://a2a_tls:$password@127.0.0.1:$port/test?sslmode=verify-full&sslrootcert=$dir/ca.pem'"
  echo "export A2A_TEST_PG_TLS_CA='$dir/ca.pem'"
  echo "export A2A_TEST_PG_TLS_OTHER_CA='$dir/other-ca.pem'"
  echo "export A2A_TEST_PG_TLS_PASSWORD='$password'"
  echo "export A2A_TEST_MYSQL_PASSWORD_URL='mysql://a2a_pw:$password@127.0.0.1:3306/test'"
  echo "export A2A_TEST_MYSQL_TLS_URL='mysql://a2a_tls:$password@127.0.0.1:$mport/test?ssl-mode=VERIFY_IDENTITY&ssl-ca=$dir/ca.pem'"
  if [ -n "$mysql_ssl_url" ]; then
    echo "export A2A_TEST_MYSQL_SSL_URL='$mysql_ssl_url'"
  fi
} >"$env_file.tmp"
chmod 600 "$env_file.tmp"
mv "$env_file.tmp" "$env_file"
echo "tls-servers: PostgreSQL (TLS, scram-sha-256) on 127.0.0.1:$port, MariaDB (TLS only) on 127.0.0.1:$mport; $env_file written"
