(function_definition name: (word) @name) @definition.function

((command
   name: (command_name (word) @_source)
   argument: [(word) (string) (raw_string)] @import.module)
 (#any-of? @_source "source" ".")) @import

(command name: (command_name (word) @call.name)) @call
