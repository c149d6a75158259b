/**
 * The coded reasons an FTP check gives for a failed step, or for a note on a step that passed
 * only because a client ignores what the server said. Stable: scripts and the console match on
 * them; the README's table is tested against this list.
 */
export const FTP_CHECK_CODE = {
  /** No agent of the mapping's location has a live tunnel. */
  UP_FTP_NO_AGENT: "No agent of the mapping's location is connected.",
  /** The agent's local policy refuses the control target. */
  UP_FTP_CONTROL_NOT_ALLOWED: "The agent's local policy (UNDERPASS_ALLOW) refuses the FTP server's address.",
  /** The agent cannot resolve or reach the internal host. */
  UP_FTP_CONTROL_UNREACHABLE: "The agent cannot resolve or reach the FTP server.",
  /** Nothing listens at the internal host and port. */
  UP_FTP_CONTROL_REFUSED: "The FTP server refused the control connection.",
  /** The control connection failed another way. */
  UP_FTP_CONTROL_FAILED: "The control connection could not be opened.",
  /** No 220 greeting (a 421, silence, or not FTP). */
  UP_FTP_NO_GREETING: "The server did not greet with 220.",
  /** USER/PASS refused. */
  UP_FTP_LOGIN_FAILED: "The server refused the login.",
  /** EPSV or PASV answered with an error. */
  UP_FTP_PASSIVE_UNSUPPORTED: "The server refused the passive-mode command.",
  /** No mapping covers the data port the server announced. */
  UP_FTP_PASSIVE_PORT_NOT_MAPPED: "No mapping covers the passive data port the server announced.",
  /** A mapping covers the port but the agent's local policy refuses it. */
  UP_FTP_DATA_NOT_ALLOWED: "The agent's local policy refuses the data port.",
  /** The mapping translates the data port to another internal port, where nothing listens. */
  UP_FTP_DATA_PORT_SHIFTED:
    "The mapping sends the data connection to another port than the server announced.",
  /** The agent could not reach the data port. */
  UP_FTP_DATA_UNREACHABLE: "The agent could not reach the data port.",
  /** The data port refused the connection. */
  UP_FTP_DATA_REFUSED: "The data port refused the connection.",
  /** The listing did not complete over the data connection. */
  UP_FTP_LIST_FAILED: "The listing did not complete.",
  /** PORT or EPRT was refused by the relay or the server. */
  UP_FTP_ACTIVE_REFUSED: "The active-mode command was refused.",
  /** The server never connected back through the agent. */
  UP_FTP_ACTIVE_NO_CONNECTION: "No active-mode data connection arrived.",
  /** Note: the 227 names an address clients cannot reach; it works only where the client ignores it. */
  UP_FTP_PASV_ADDRESS_IGNORED: "PASV works only because the client ignores the address in the 227.",
  /** Note: the relay rewrote the 227 to its own address. */
  UP_FTP_PASV_ADDRESS_REWRITTEN: "The relay rewrote the address in the 227 to its own.",
} as const;

export type FtpCheckCode = keyof typeof FTP_CHECK_CODE;
