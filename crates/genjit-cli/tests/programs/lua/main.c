/* A minimal Lua driver for the multi-module differential test: runs the script named by argv[1] with
   the standard libraries, prints any error, and exits 0 on success, 1 on error. */
#include <stdio.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s script.lua\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  int status = luaL_dofile(L, argv[1]);
  if (status != LUA_OK) {
    fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
  }
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
