export class Users {
  private byId = new Map<string, User>();

  /** Old. */
  get(id: string): User | undefined {
    return this.byId.get(id);
  }
}
