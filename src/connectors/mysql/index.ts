/** MySQL and MariaDB, as a source (a streamed result) and as a destination (multi-row statements). */
export { mysqlConnector } from './kind.js';
export { MysqlDestination } from './mysql-destination.js';
export { MysqlSource } from './mysql-source.js';
