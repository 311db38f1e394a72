(class name: [(constant) (scope_resolution)] @name) @definition.class
(module name: [(constant) (scope_resolution)] @name) @definition.module
(method name: (_) @name) @definition.method
(singleton_method name: (_) @name) @definition.method

(class superclass: (superclass [(constant) (scope_resolution)] @inherit.base)) @inherit.class

((call
   method: (identifier) @_require
   arguments: (argument_list . (string (string_content) @import.module)))
 (#any-of? @_require "require" "require_relative" "load")) @import

(call method: (identifier) @call.name) @call
